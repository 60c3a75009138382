"""Recording a user's cancel of batches: which batches, by whom, when, why, and what happens to their tasks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select
from sqlmodel import col

from nightbatch.db.batches import mark_canceling
from nightbatch.db.models import Batch, BatchStatus

__all__ = ["cancelable_batches", "record_cancel"]

CANCELABLE = (BatchStatus.IN_PROGRESS,)


def cancelable_batches(
    engine: Engine, *, batch_id: int | None = None, run_id: int | None = None
) -> list[tuple[int, str]]:
    """``(id, provider id)`` of the batch ``batch_id`` or the open batches of run ``run_id``, if in progress."""
    query = select(col(Batch.id), col(Batch.provider_batch_id)).where(
        col(Batch.status).in_(CANCELABLE), col(Batch.provider_batch_id).is_not(None)
    )
    if batch_id is not None:
        query = query.where(col(Batch.id) == batch_id)
    if run_id is not None:
        query = query.where(col(Batch.run_id) == run_id)
    with engine.connect() as conn:
        return [(int(i), str(p)) for i, p in conn.execute(query.order_by(col(Batch.id))).all()]


def record_cancel(engine: Engine, batch_id: int, note: str, *, requeue: bool, when: datetime) -> None:
    """Mark the batch canceling with ``note``; its tasks end canceled unless ``requeue`` (then they retry).

    The transition is :func:`nightbatch.db.batches.mark_canceling`."""
    mark_canceling(engine, batch_id, note, user_canceled_at=None if requeue else when)
