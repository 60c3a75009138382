"""The run summary: outcomes, model mix, cache hit rate, cost, the naive baseline and the lever split.

Every figure comes from the ``usage_record`` ledger (what the API reported), never from assumptions.

- **Cache hit rate** = cache-read tokens / (cache-read + cache-write tokens): of the prompt tokens that
  were eligible for caching (those before a breakpoint), the share served from the cache.
- **Naive baseline** = the same task responses, every one real-time on the top model with no caching
  (all prompt tokens at its input price): what the seed article measures savings against. Its split into
  routing, batching and caching is ``savings`` (see :mod:`nightbatch.report.savings`).

For a full report (cost per task type × model, hit rates per type and batch, drops) use
:func:`nightbatch.report.build_report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import Task, UsageRecord
from nightbatch.pricing import PriceTable, pusd_to_usd
from nightbatch.report.cache import hit_rate
from nightbatch.report.query import Selection, ledger_groups
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
    savings: Savings = field(default_factory=Savings)
    """The naive → routed → batched → actual cost levels and the three levers between them."""

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
    baseline = baseline_model or baseline_model_for(registry)
    selection = (
        Selection(run_id=run_id, interrupted_runs=tuple(interrupted_before(engine, run_id)))
        if run_id is not None
        else Selection.everything()
    )
    summary = RunSummary()
    with engine.connect() as conn:
        task_query = select(col(Task.status), func.count()).group_by(col(Task.status))
        if run_id is not None:
            billed_tasks = select(col(UsageRecord.task_id)).where(*selection.usage_filter())
            task_query = task_query.where(col(Task.id).in_(billed_tasks))
        summary.outcomes = {str(status): n for status, n in conn.execute(task_query).all()}
    groups = ledger_groups(engine, selection, prices)
    for g in groups:
        summary.tasks_by_model[g.model] = summary.tasks_by_model.get(g.model, 0) + g.responses
        summary.billed_responses += g.responses
        summary.prompt_tokens += g.usage.prompt_tokens
        summary.output_tokens += g.usage.output_tokens
        summary.cache_read_tokens += g.usage.cache_read_tokens
        summary.cache_write_tokens += g.usage.cache_write_5m_tokens + g.usage.cache_write_1h_tokens
        summary.cost_pusd += g.cost_pusd
    with engine.connect() as conn:
        thinking = select(func.sum(col(UsageRecord.thinking_tokens))).where(*selection.usage_filter())
        summary.thinking_tokens = int(conn.execute(thinking).scalar_one() or 0)
    summary.savings = savings(groups, prices, baseline_model=baseline)
    summary.baseline_pusd = summary.savings.naive_pusd
    return summary
