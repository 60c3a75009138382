"""The run summary: outcomes, model mix, cache hit rate, cost, and the naive baseline.

Every figure comes from the ``usage_record`` ledger (what the API reported), never from assumptions.

- **Cache hit rate** = cache-read tokens / (cache-read + cache-write tokens): of the prompt tokens that
  were eligible for caching (those before a breakpoint), the share served from the cache.
- **Naive baseline** = the same prompt and output tokens, every task real-time on the top model with no
  caching (all prompt tokens at its input price): what the seed article measures savings against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import Task, UsageRecord
from nightbatch.pricing import PriceTable, Usage, price_usage, pusd_to_usd

__all__ = ["BASELINE_MODEL", "RunSummary", "summarize"]

BASELINE_MODEL = "claude-opus-4-8"


@dataclass
class RunSummary:
    outcomes: dict[str, int] = field(default_factory=dict)
    tasks_by_model: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_pusd: int = 0
    baseline_pusd: int = 0
    billed_responses: int = 0

    @property
    def cost_usd(self) -> Decimal:
        return pusd_to_usd(self.cost_pusd)

    @property
    def baseline_usd(self) -> Decimal:
        return pusd_to_usd(self.baseline_pusd)

    @property
    def cache_hit_rate(self) -> float | None:
        eligible = self.cache_read_tokens + self.cache_write_tokens
        return self.cache_read_tokens / eligible if eligible else None

    @property
    def saving_fraction(self) -> float | None:
        return 1 - self.cost_pusd / self.baseline_pusd if self.baseline_pusd else None


def summarize(
    engine: Engine, prices: PriceTable, *, run_id: int | None = None, baseline_model: str = BASELINE_MODEL
) -> RunSummary:
    """Summarize the tasks and usage of one run (or of everything, when ``run_id`` is None)."""
    summary = RunSummary()
    usage_filter = [col(UsageRecord.run_id) == run_id] if run_id is not None else []
    with engine.connect() as conn:
        task_query = select(col(Task.status), func.count()).group_by(col(Task.status))
        if run_id is not None:
            billed_tasks = select(col(UsageRecord.task_id)).where(*usage_filter)
            task_query = task_query.where(col(Task.id).in_(billed_tasks))
        summary.outcomes = {str(status): n for status, n in conn.execute(task_query).all()}
        rows = conn.execute(
            select(
                col(UsageRecord.model),
                func.count(),
                func.sum(col(UsageRecord.input_tokens)),
                func.sum(col(UsageRecord.output_tokens)),
                func.sum(col(UsageRecord.cache_write_5m_tokens)),
                func.sum(col(UsageRecord.cache_write_1h_tokens)),
                func.sum(col(UsageRecord.cache_read_tokens)),
                func.sum(col(UsageRecord.cost_pusd)),
            )
            .where(*usage_filter)
            .group_by(col(UsageRecord.model))
        ).all()
    for model, n, inp, out, w5, w1, read, cost in rows:
        inp, out, w5, w1, read = (int(v or 0) for v in (inp, out, w5, w1, read))
        summary.tasks_by_model[model] = int(n)
        summary.billed_responses += int(n)
        summary.prompt_tokens += inp + w5 + w1 + read
        summary.output_tokens += out
        summary.cache_read_tokens += read
        summary.cache_write_tokens += w5 + w1
        summary.cost_pusd += int(cost or 0)
        naive = Usage(input_tokens=inp + w5 + w1 + read, output_tokens=out)
        summary.baseline_pusd += price_usage(prices, baseline_model, naive, "standard").total_pusd
    return summary
