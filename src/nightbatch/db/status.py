"""What ``nightbatch status`` shows: tasks per type and state, claims and their leases, open batches.

Read-only. Ages are measured from the database's timestamps against ``now`` (UTC).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import Batch, BatchStatus, Task, TaskStatus

__all__ = ["ClaimRow", "batch_durations", "claims", "tasks_by_type_and_state"]


def tasks_by_type_and_state(engine: Engine) -> dict[str, dict[str, int]]:
    """``{task_type: {status: count}}``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.task_type), col(Task.status), func.count()).group_by(col(Task.task_type), col(Task.status))
        ).all()
    out: dict[str, dict[str, int]] = {}
    for task_type, status, count in rows:
        out.setdefault(str(task_type), {})[str(status)] = int(count)
    return out


@dataclass(frozen=True)
class ClaimRow:
    """Claims one worker holds: tasks being submitted, or a batch being ingested."""

    what: str
    worker: str
    count: int
    oldest: datetime

    def age(self, now: datetime) -> timedelta:
        return now - self.oldest

    def lease_left(self, now: datetime, lease_seconds: int) -> timedelta:
        """Time until the oldest claim may be taken over (negative: it already may)."""
        return self.oldest + timedelta(seconds=lease_seconds) - now


def claims(engine: Engine) -> list[ClaimRow]:
    with engine.connect() as conn:
        tasks = conn.execute(
            select(col(Task.claimed_by), func.count(), func.min(col(Task.claimed_at)))
            .where(col(Task.status) == TaskStatus.CLAIMED, col(Task.claimed_at).is_not(None))
            .group_by(col(Task.claimed_by))
        ).all()
        batches = conn.execute(
            select(col(Batch.claimed_by), func.count(), func.min(col(Batch.claimed_at)))
            .where(col(Batch.claimed_at).is_not(None), col(Batch.status).in_([BatchStatus.ENDED, BatchStatus.PENDING]))
            .group_by(col(Batch.claimed_by))
        ).all()
    rows = [ClaimRow("tasks", str(w or "-"), int(n), oldest) for w, n, oldest in tasks if oldest is not None]
    rows += [ClaimRow("batches", str(w or "-"), int(n), oldest) for w, n, oldest in batches if oldest is not None]
    return rows


def batch_durations(engine: Engine, *, last: int = 50) -> dict[str, timedelta]:
    """Median submit-to-end time of the last ``last`` ended batches, per model (and ``*`` for all)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Batch.model), col(Batch.submitted_at), col(Batch.ended_at))
            .where(col(Batch.submitted_at).is_not(None), col(Batch.ended_at).is_not(None))
            .order_by(col(Batch.id).desc())
            .limit(last)
        ).all()
    seconds: dict[str, list[float]] = {}
    for model, submitted, ended in rows:
        took = (ended - submitted).total_seconds()
        seconds.setdefault(str(model), []).append(took)
        seconds.setdefault("*", []).append(took)
    return {model: timedelta(seconds=statistics.median(values)) for model, values in seconds.items()}
