"""What a run's batch rows say a person should look at: expired requests, errors, orphans."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlmodel import col

from nightbatch.db.models import Batch

__all__ = ["BatchNote", "batch_notes"]


@dataclass(frozen=True)
class BatchNote:
    """One batch of a run: its provider id, requests that expired, its recorded error and its purpose."""

    provider_batch_id: str | None
    expired_count: int
    error: str | None
    purpose: str


def batch_notes(engine: Engine, run_ids: Sequence[int]) -> list[BatchNote]:
    """Every batch of the runs ``run_ids``."""
    stmt = select(col(Batch.provider_batch_id), col(Batch.expired_count), col(Batch.error), col(Batch.purpose)).where(
        col(Batch.run_id).in_(list(run_ids))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [BatchNote(pid, int(expired or 0), error, str(purpose)) for pid, expired, error, purpose in rows]
