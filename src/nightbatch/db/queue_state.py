"""Why a submit round claimed nothing: read-only questions about the queue's state.

``nightbatch submit`` must never answer ``claimed: 0`` without a reason. :func:`why_nothing_claimed` tells
apart the cases a user can act on: nothing queued at all; only task types this worker has no config for;
other types than the ones asked for; claims held by a live worker (until when); tasks behind an
unconfirmed batch waiting for reconciliation (until when); tasks already at the provider.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import Batch, BatchStatus, Task, TaskStatus, utcnow

__all__ = ["why_nothing_claimed"]


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def why_nothing_claimed(
    engine: Engine,
    *,
    wanted: Collection[str],
    configured: Collection[str],
    worker: str,
    lease_seconds: int,
    now: datetime | None = None,
) -> str:
    """One line saying why a claim of ``wanted`` task types by ``worker`` found nothing."""
    now = now or utcnow()
    lease = timedelta(seconds=lease_seconds)
    with engine.connect() as conn:
        queued: dict[str, int] = {
            str(t): int(n)
            for t, n in conn.execute(
                select(col(Task.task_type), func.count())
                .where(col(Task.status) == TaskStatus.QUEUED)
                .group_by(col(Task.task_type))
            )
        }
        held = conn.execute(
            select(
                col(Task.claimed_by),
                func.count(),
                func.min(col(Task.claimed_at)),
                func.count(col(Task.batch_id)),
            )
            .where(col(Task.status) == TaskStatus.CLAIMED, col(Task.task_type).in_(sorted(wanted)))
            .group_by(col(Task.claimed_by))
        ).all()
        pending = conn.execute(
            select(col(Batch.id), col(Batch.claimed_at)).where(col(Batch.status) == BatchStatus.PENDING)
        ).all()
        in_flight = conn.execute(
            select(func.count()).select_from(Task).where(col(Task.status) == TaskStatus.SUBMITTED)
        ).scalar_one()
    reasons: list[str] = []
    unconfigured = {t: n for t, n in queued.items() if t not in configured}
    other = {t: n for t, n in queued.items() if t in configured and t not in wanted}
    if not queued and not held:
        reasons.append("nothing is queued")
    if unconfigured:
        listed = ", ".join(f"{t}: {n}" for t, n in sorted(unconfigured.items()))
        reasons.append(f"queued tasks of unconfigured types wait for a worker that knows them ({listed})")
    if other:
        listed = ", ".join(f"{t}: {n}" for t, n in sorted(other.items()))
        reasons.append(f"queued tasks are of types not asked for this run ({listed})")
    for holder, count, earliest, linked in held:
        until = _when(earliest + lease) if earliest is not None else "its lease lapses"
        if linked:
            batches = [b for b, at in pending if at is not None]
            where = f" behind unconfirmed batch(es) {', '.join(map(str, batches))}" if batches else ""
            reasons.append(f"{linked} task(s) wait{where} for reconciliation (until {until})")
        if count - linked:
            who = "this worker" if holder == worker else f"worker {holder}"
            reasons.append(f"{count - linked} task(s) are claimed by {who} until {until}")
    if in_flight:
        reasons.append(f"{in_flight} task(s) are at the provider in open batches (collect picks them up)")
    return "; ".join(reasons) or "no claimable task"
