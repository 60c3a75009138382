"""What the batch rows say about how long batches took: the samples the duration forecast is built from.

A duration is ``submitted_at -> ended_at``. Both are the provider's own timestamps (``created_at`` and
``ended_at`` of the batch as the API reported them), so a skewed local clock cannot distort them. Batches
that were canceled (by a deadline or a reconcile) are left out: their end says when someone gave up, not
how long the queue took.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlmodel import col

from nightbatch.db.models import Batch, BatchStatus

__all__ = ["BatchDuration", "InFlightBatch", "finished_batches", "in_flight_batches"]


@dataclass(frozen=True)
class BatchDuration:
    """One ended batch: its model, size, when it was submitted and how long it took (seconds)."""

    model: str
    requests: int
    submitted_at: datetime
    seconds: float


@dataclass(frozen=True)
class InFlightBatch:
    """One batch the provider still holds."""

    id: int
    model: str
    requests: int
    submitted_at: datetime
    run_id: int | None


def finished_batches(engine: Engine, *, since: datetime | None = None, limit: int = 5_000) -> list[BatchDuration]:
    """The most recent ended task batches (newest first) that ran to their end, at most ``limit``."""
    query = (
        select(col(Batch.model), col(Batch.request_count), col(Batch.submitted_at), col(Batch.ended_at))
        .where(
            col(Batch.submitted_at).is_not(None),
            col(Batch.ended_at).is_not(None),
            col(Batch.status).in_([BatchStatus.ENDED, BatchStatus.INGESTED]),
            col(Batch.purpose) == "task",
            col(Batch.canceled_count) == 0,
        )
        .order_by(col(Batch.ended_at).desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(col(Batch.submitted_at) >= since)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [BatchDuration(str(m), int(n), s, max(0.0, (e - s).total_seconds())) for m, n, s, e in rows if s is not None]


def in_flight_batches(engine: Engine, *, run_id: int | None = None) -> list[InFlightBatch]:
    """Batches submitted and not yet ended (``in_progress`` or ``canceling``), oldest first."""
    query = (
        select(col(Batch.id), col(Batch.model), col(Batch.request_count), col(Batch.submitted_at), col(Batch.run_id))
        .where(
            col(Batch.status).in_([BatchStatus.IN_PROGRESS, BatchStatus.CANCELING]),
            col(Batch.submitted_at).is_not(None),
        )
        .order_by(col(Batch.id))
    )
    if run_id is not None:
        query = query.where(col(Batch.run_id) == run_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [InFlightBatch(int(i), str(m), int(n), s, r) for i, m, n, s, r in rows]
