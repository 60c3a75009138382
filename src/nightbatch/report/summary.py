"""The run summary: outcomes, model mix, cache hit rate, cost, the naive baseline and the lever split.

Every figure comes from the ``usage_record`` ledger (what the API reported), never from assumptions.

- **Prefix hit rate** (the headline) = prefix tokens read ÷ all prefix tokens sent, whether they were
  marked for caching or not, or below the model's minimum (see :mod:`nightbatch.report.prefix`).
- **Cache read share** (``cache_hit_rate``, second and labelled) = cache-read tokens / (cache-read +
  cache-write tokens): of the prefix tokens sent with a breakpoint, the share served from the cache.
- **Naive baseline** = the same task responses, every one real-time on the top model with no caching
  (all prompt tokens at its input price): what the seed article measures savings against. Its split into
  routing, batching and caching is ``savings`` (see :mod:`nightbatch.report.savings`).

For a full report (cost per task type × model, hit rates per type and batch, drops) use
:func:`nightbatch.report.build_report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from nightbatch.db import Engine
from nightbatch.db.deadlines import fallback_rows
from nightbatch.db.queries.costs import thinking_tokens
from nightbatch.db.queries.tasks import task_outcomes
from nightbatch.deadline.durations import describe_all, expected_finishes
from nightbatch.pricing import PriceTable, pusd_to_usd
from nightbatch.report.build import advice_for
from nightbatch.report.cache import hit_rate
from nightbatch.report.prefix import PrefixFigures, prefix_figures
from nightbatch.report.query import Selection, batch_cache, batch_plans, ledger_groups
from nightbatch.report.savings import BASELINE_MODEL, Savings, baseline_model_for, savings
from nightbatch.runs import interrupted_before
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["BASELINE_MODEL", "RunSummary", "summarize"]


@dataclass
class RunSummary:
    """Totals of one run (or of everything). Money in picodollars; ``*_usd`` properties in exact dollars."""

    outcomes: dict[str, int] = field(default_factory=dict)
    """Tasks billed in the run, by current status."""
    tasks_by_model: dict[str, int] = field(default_factory=dict)
    """Billed responses per model (every purpose)."""
    prompt_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_pusd: int = 0
    baseline_pusd: int = 0
    billed_responses: int = 0
    thinking_tokens: int = 0
    """Of ``output_tokens``, those spent thinking (billed as output)."""
    fallback_pusd: int = 0
    """What the real-time fallback cost (tasks whose batch would miss the deadline), standard prices."""
    fallback_tasks: list[int] = field(default_factory=list)
    """Every task that fell back to a real-time request."""
    in_flight: list[str] = field(default_factory=list)
    """One line per batch still open: its expected finish (p50/p95) from measured durations."""
    savings: Savings = field(default_factory=Savings)
    """The naive → routed → batched → actual cost levels and the three levers between them."""
    prefix: list[PrefixFigures] = field(default_factory=list)
    """Prefix tokens per task type × model: read, written, below the model's minimum, not marked."""
    advice: list[str] = field(default_factory=list)
    """Padding advice for prefixes below their model's minimum."""

    @property
    def prefix_sent_tokens(self) -> int:
        return sum(f.sent for f in self.prefix)

    @property
    def prefix_hit_rate(self) -> float | None:
        """Prefix tokens read ÷ all prefix tokens sent (the headline cache figure)."""
        sent = self.prefix_sent_tokens
        return sum(f.read for f in self.prefix) / sent if sent else None

    @property
    def unpriced(self) -> dict[str, int]:
        """Billed responses without a price (NULL cost), by model: NOT in ``cost_pusd``."""
        return self.savings.unpriced

    @property
    def cost_usd(self) -> Decimal:
        return pusd_to_usd(self.cost_pusd)

    @property
    def baseline_usd(self) -> Decimal:
        return pusd_to_usd(self.baseline_pusd)

    @property
    def cache_hit_rate(self) -> float | None:
        """read ÷ (read + write): the share of prefix tokens sent with a breakpoint that were read."""
        return hit_rate(self.cache_read_tokens, self.cache_write_tokens)

    @property
    def saving_fraction(self) -> float | None:
        return 1 - self.cost_pusd / self.baseline_pusd if self.baseline_pusd else None


def summarize(
    engine: Engine,
    prices: PriceTable,
    *,
    run_id: int | None = None,
    baseline_model: str | None = None,
    registry: TaskTypeRegistry | None = None,
) -> RunSummary:
    """Summarize the tasks and usage of one run (or of everything, when ``run_id`` is None).

    The naive baseline runs on ``baseline_model``, else on the top of ``registry``'s ladders. A run's
    summary includes the interrupted runs just before it: it collected and finished their work.
    """
    selection = (
        Selection(run_id=run_id, interrupted_runs=tuple(interrupted_before(engine, run_id)))
        if run_id is not None
        else Selection.everything()
    )
    summary = RunSummary()
    summary.outcomes = task_outcomes(engine, selection if run_id is not None else None)
    groups = ledger_groups(engine, selection, prices)
    # Without a config, the top model billed: a report after `make run` prices the naive case as the demo did.
    baseline = baseline_model or baseline_model_for(registry, (g.model for g in groups))
    for g in groups:
        summary.tasks_by_model[g.model] = summary.tasks_by_model.get(g.model, 0) + g.responses
        summary.billed_responses += g.responses
        summary.prompt_tokens += g.usage.prompt_tokens
        summary.output_tokens += g.usage.output_tokens
        summary.cache_read_tokens += g.usage.cache_read_tokens
        summary.cache_write_tokens += g.usage.cache_write_5m_tokens + g.usage.cache_write_1h_tokens
        summary.cost_pusd += g.cost_pusd
    summary.thinking_tokens = thinking_tokens(engine, selection)
    fallback = fallback_rows(engine, run_id=run_id)
    summary.fallback_pusd = sum(r.cost_pusd or 0 for r in fallback)
    summary.fallback_tasks = sorted(r.task_id for r in fallback)
    summary.in_flight = describe_all(expected_finishes(engine, datetime.now(UTC), run_id=run_id))
    summary.savings = savings(groups, prices, baseline_model=baseline)
    batches = batch_cache(engine, selection)
    summary.prefix = prefix_figures(batches, batch_plans(engine, [b.batch_id for b in batches]))
    summary.advice = advice_for(summary.prefix, prices)
    summary.baseline_pusd = summary.savings.naive_pusd
    return summary
