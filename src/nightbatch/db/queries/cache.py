"""Cache tokens in the ledger: per batch of a selection, per run and task type over recent runs, and each
batch's recorded cache plan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, exists, func, select
from sqlmodel import col

from nightbatch.db.models import Batch, Run, Task, UsagePurpose, UsageRecord
from nightbatch.db.queries._sql import as_int
from nightbatch.db.queries.selection import Selection

__all__ = ["RUNS_SCANNED", "BatchCache", "BatchPlan", "RunCache", "batch_cache", "batch_plans", "run_cache_history"]

RUNS_SCANNED = 60
"""How many runs up to the selection :func:`run_cache_history` reads (the rolling window and the chart)."""


@dataclass(frozen=True)
class RunCache:
    """Cache tokens of one task type's task responses in one run."""

    run_id: int
    started_at: datetime
    task_type: str
    cache_read_tokens: int
    cache_write_tokens: int


@dataclass(frozen=True)
class BatchCache:
    """Cache tokens and cost of one batch's billed responses in the selection."""

    batch_id: int
    provider_batch_id: str | None
    model: str
    task_type: str | None
    cache_ttl: str | None
    responses: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_pusd: int
    unpriced: int = 0  # responses with no price row (NULL cost): not in cost_pusd, never counted as $0


@dataclass(frozen=True)
class BatchPlan:
    """What a batch was sent as: its group, cache role and the planner's recorded decision."""

    batch_id: int
    prefix_hash: str | None
    cache_role: str | None
    decision: dict[str, Any]


def run_cache_history(engine: Engine, selection: Selection, *, runs: int = RUNS_SCANNED) -> list[RunCache]:
    """Cache tokens per (run, task type) of task responses, for the latest ``runs`` runs up to the selection.

    Runs that billed nothing are skipped. Rows come oldest run first.
    """
    billed = exists().where(col(UsageRecord.run_id) == col(Run.id))
    recent = select(col(Run.id)).where(billed)
    end = selection.runs_end()
    if end is not None:
        recent = recent.where(col(Run.started_at) < end)
    recent = recent.order_by(col(Run.started_at).desc(), col(Run.id).desc()).limit(runs)
    keys = (col(UsageRecord.run_id), col(Run.started_at), col(Task.task_type))
    stmt = (
        select(
            *keys,
            func.sum(col(UsageRecord.cache_read_tokens)),
            func.sum(col(UsageRecord.cache_write_5m_tokens) + col(UsageRecord.cache_write_1h_tokens)),
        )
        .join(Run, col(Run.id) == col(UsageRecord.run_id))
        .join(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(col(UsageRecord.purpose) == UsagePurpose.TASK, col(UsageRecord.run_id).in_(recent))
        .group_by(*keys)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    found = [RunCache(int(r[0]), r[1], r[2], as_int(r[3]), as_int(r[4])) for r in rows]
    return sorted(found, key=lambda r: (r.started_at, r.run_id, r.task_type))


def batch_cache(engine: Engine, selection: Selection) -> list[BatchCache]:
    """Cache tokens and cost per batch among the selection's usage rows, by batch id."""
    keys = (col(UsageRecord.batch_id), col(Batch.provider_batch_id), col(Batch.model), col(Batch.cache_ttl))
    stmt = (
        select(
            *keys,
            func.min(col(Task.task_type)),
            func.count(),
            func.sum(col(UsageRecord.cache_read_tokens)),
            func.sum(col(UsageRecord.cache_write_5m_tokens) + col(UsageRecord.cache_write_1h_tokens)),
            func.sum(col(UsageRecord.cost_pusd)),
            func.count(col(UsageRecord.cost_pusd)),
        )
        .join(Batch, col(Batch.id) == col(UsageRecord.batch_id))
        .outerjoin(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(*selection.usage_filter())
        .group_by(*keys)
        .order_by(col(UsageRecord.batch_id))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        BatchCache(
            batch_id,
            provider_id,
            model,
            task_type,
            ttl,
            int(n),
            as_int(read),
            as_int(written),
            as_int(cost),
            int(n) - int(priced),
        )
        for batch_id, provider_id, model, ttl, task_type, n, read, written, cost, priced in rows
    ]


def batch_plans(engine: Engine, batch_ids: list[int]) -> dict[int, BatchPlan]:
    """The recorded cache plan of each batch in ``batch_ids``."""
    found: dict[int, BatchPlan] = {}
    with engine.connect() as conn:
        for start in range(0, len(batch_ids), 1000):
            ids = batch_ids[start : start + 1000]
            rows = conn.execute(
                select(col(Batch.id), col(Batch.prefix_hash), col(Batch.cache_role), col(Batch.cache_decision)).where(
                    col(Batch.id).in_(ids)
                )
            )
            for batch_id, prefix_hash, role, decision in rows:
                found[int(batch_id)] = BatchPlan(int(batch_id), prefix_hash, role, dict(decision or {}))
    return found
