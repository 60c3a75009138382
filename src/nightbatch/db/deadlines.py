"""The SQL of the deadline step: which batches and queued tasks a deadline concerns, and settling them.

Every update that moves a task is a compare-and-set on its status (and claimer), so two workers running
the deadline step at once never both send, fail or claim the same task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, case, func, or_, select, update
from sqlmodel import col

from nightbatch.db.batches import mark_canceling
from nightbatch.db.ledger import AttemptRow, UsageRow, append
from nightbatch.db.models import (
    Batch,
    BatchStatus,
    Run,
    Task,
    TaskAttempt,
    TaskStatus,
    UsagePurpose,
    UsageRecord,
)
from nightbatch.db.task_claims import ClaimedTask

__all__ = [
    "DEADLINE_ERROR",
    "FallbackRow",
    "OpenBatch",
    "QueuedTask",
    "claim_for_fallback",
    "fail_for_deadline",
    "fallback_rows",
    "mark_canceled_for_deadline",
    "note_left_queued",
    "open_task_batches",
    "queued_with_deadlines",
    "record_fallback",
    "release_fallback",
    "run_spent_pusd",
]

DEADLINE_ERROR = "deadline"
"""``error_type`` of a task the deadline failed or left queued for the next run."""

_RETRIED = ("canceled", "expired")


@dataclass(frozen=True)
class OpenBatch:
    """A task batch still running, with the earliest own deadline among its tasks."""

    id: int
    provider_batch_id: str
    run_id: int | None
    earliest_task_deadline: datetime | None


@dataclass(frozen=True)
class QueuedTask:
    """A queued task a deadline may concern."""

    id: int
    task_type: str
    deadline: datetime | None
    model: str | None  # the override or escalated route, when set
    retried_in_run: bool  # a batch of the run gave it back (canceled or expired)


@dataclass(frozen=True)
class FallbackRow:
    """One task answered real-time instead of by its batch."""

    task_id: int
    task_type: str
    model: str
    cost_pusd: int | None  # None: unpriced (no price row for the model that day)
    status: str


def open_task_batches(engine: Engine) -> list[OpenBatch]:
    """Task batches ``in_progress`` at the provider, each with its tasks' earliest own deadline."""
    earliest = (
        select(col(Task.batch_id), func.min(col(Task.deadline)).label("earliest"))
        .where(col(Task.status) == TaskStatus.SUBMITTED)
        .group_by(col(Task.batch_id))
        .subquery()
    )
    query = (
        select(col(Batch.id), col(Batch.provider_batch_id), col(Batch.run_id), earliest.c.earliest)
        .outerjoin(earliest, earliest.c.batch_id == col(Batch.id))
        .where(
            col(Batch.status) == BatchStatus.IN_PROGRESS,
            col(Batch.purpose) == UsagePurpose.TASK,
            col(Batch.provider_batch_id).is_not(None),
        )
        .order_by(col(Batch.id))
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [OpenBatch(int(i), str(p), r, e) for i, p, r, e in rows]


def mark_canceled_for_deadline(engine: Engine, batch_id: int, status: str, note: str) -> None:
    """Record that the deadline canceled ``batch_id`` (its results are still ingested as usual)."""
    mark_canceling(engine, batch_id, note[:2000], status=BatchStatus(status))


def queued_with_deadlines(
    engine: Engine, run_id: int | None, task_types: Iterable[str], *, deadline_before: datetime | None = None
) -> list[QueuedTask]:
    """Queued tasks of ``task_types`` that carry their own deadline, or that are the run's.

    ``deadline_before``: only own deadlines up to then (what cannot be due yet is not read).
    The run's tasks: those a batch of ``run_id`` gave back (canceled or expired), and those the run touched
    since it started (enqueued, or handed back to the queue: over budget, or waiting for a cache pilot that
    the deadline canceled; such a task has no attempt of its own in the run).
    """
    retried = (
        select(col(TaskAttempt.task_id))
        .join(Batch, col(Batch.id) == col(TaskAttempt.batch_id))
        .where(col(Batch.run_id) == run_id, col(TaskAttempt.result_type).in_(_RETRIED))
    )
    started = select(col(Run.started_at)).where(col(Run.id) == run_id).scalar_subquery()
    in_run = or_(col(Task.id).in_(retried), col(Task.updated_at) >= started) if run_id is not None else None
    own: ColumnElement[bool] = col(Task.deadline).is_not(None)
    if deadline_before is not None:
        own = and_(own, col(Task.deadline) <= deadline_before)
    conditions: list[Any] = [own]
    if in_run is not None:
        conditions.append(in_run)
    query = select(
        col(Task.id),
        col(Task.task_type),
        col(Task.deadline),
        func.coalesce(col(Task.model_override), col(Task.route_model)),
        in_run if in_run is not None else col(Task.id).is_(None),
    ).where(
        col(Task.status) == TaskStatus.QUEUED,
        col(Task.task_type).in_(sorted(set(task_types))),
        or_(*conditions),
    )
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(col(Task.id))).all()
    return [QueuedTask(int(i), str(t), d, m, bool(r)) for i, t, d, m, r in rows]


def claim_for_fallback(engine: Engine, task_ids: list[int], worker: str, now: datetime) -> list[ClaimedTask]:
    """Claim these queued tasks for real-time sending; the ones taken meanwhile are skipped.

    As for batches (:mod:`nightbatch.queue.claim`), a claim counts in ``claims`` and ``attempts`` goes up only
    when the request is sent (:func:`record_fallback`, :func:`release_fallback` with ``sent``).
    """
    if not task_ids:
        return []
    with engine.begin() as conn:
        rows = conn.execute(
            update(Task)
            .where(col(Task.id).in_(task_ids), col(Task.status) == TaskStatus.QUEUED)
            .values(status=TaskStatus.CLAIMED, claimed_by=worker, claimed_at=now, claims=col(Task.claims) + 1)
            .returning(
                col(Task.id),
                col(Task.task_type),
                col(Task.payload),
                col(Task.idempotency_key),
                col(Task.attempts),
                col(Task.priority),
                col(Task.deadline),
                col(Task.model_override),
                col(Task.source),
                col(Task.route_model),
            )
        ).all()
    return sorted(
        (ClaimedTask(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], worker, now, r[9]) for r in rows),
        key=lambda t: t.id,
    )


def release_fallback(
    engine: Engine, task_id: int, worker: str, *, error_type: str, message: str, sent: bool = False
) -> None:
    """Give a claimed task back to the queue: ``sent`` (the call went out and failed) counts an attempt;
    otherwise (over budget) the claim is handed back as if never made."""
    counted = (
        {"attempts": col(Task.attempts) + 1, "claims": 0}
        if sent
        else {"claims": case((col(Task.claims) > 0, col(Task.claims) - 1), else_=0)}
    )
    with engine.begin() as conn:
        conn.execute(
            update(Task)
            .where(col(Task.id) == task_id, col(Task.status) == TaskStatus.CLAIMED, col(Task.claimed_by) == worker)
            .values(
                status=TaskStatus.QUEUED,
                claimed_by=None,
                claimed_at=None,
                error_type=error_type,
                error_message=message[:2000],
                **counted,
            )
        )


def fail_for_deadline(
    engine: Engine,
    task_ids: list[int],
    reason: str,
    *,
    status: TaskStatus = TaskStatus.QUEUED,
    worker: str | None = None,
    sent: bool = False,
) -> list[int]:
    """Fail these tasks (still in ``status``, and held by ``worker`` when given) with ``reason``.

    ``sent``: a real-time request went out for them (and was refused): it counts as an attempt.
    """
    if not task_ids:
        return []
    guard = [col(Task.id).in_(task_ids), col(Task.status) == status]
    if worker is not None:
        guard.append(col(Task.claimed_by) == worker)
    with engine.begin() as conn:
        rows = conn.execute(
            update(Task)
            .where(and_(*guard))
            .values(
                status=TaskStatus.FAILED,
                error_type=DEADLINE_ERROR,
                error_message=reason[:2000],
                claimed_by=None,
                claimed_at=None,
                **({"attempts": col(Task.attempts) + 1, "claims": 0} if sent else {}),
            )
            .returning(col(Task.id))
        ).scalars()
        return sorted(int(i) for i in rows if i is not None)


def note_left_queued(engine: Engine, task_ids: list[int], reason: str) -> None:
    """Say on queued tasks why they wait for the next run."""
    if not task_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(Task)
            .where(col(Task.id).in_(task_ids), col(Task.status) == TaskStatus.QUEUED)
            .values(error_type=DEADLINE_ERROR, error_message=reason[:2000])
        )


def record_fallback(
    engine: Engine,
    task: ClaimedTask,
    *,
    worker: str,
    usage: UsageRow,
    attempt: AttemptRow,
    status: TaskStatus,
    output_uri: str | None,
    inline: Any,
    now: datetime,
) -> None:
    """One real-time answer: its ledger and attempt rows (:mod:`nightbatch.db.ledger`) and its task, at once."""
    failed = status == TaskStatus.FAILED
    with engine.begin() as conn:
        append(conn, usage=[usage], attempts=[attempt], now=now)
        conn.execute(
            update(Task)
            .where(col(Task.id) == task.id, col(Task.status) == TaskStatus.CLAIMED, col(Task.claimed_by) == worker)
            .values(
                status=status,
                model=usage.model,
                output_uri=output_uri,
                output_line=1 if output_uri else None,
                output_inline=inline,
                error_type="output_check" if failed else None,
                error_message=attempt.check_reason if failed else None,
                claimed_by=None,
                claimed_at=None,
                attempts=col(Task.attempts) + 1,
                claims=0,
                updated_at=now,
            )
        )


def fallback_rows(engine: Engine, *, run_id: int | None = None) -> list[FallbackRow]:
    """Every task answered real-time by the fallback (of ``run_id``, when given), with what it cost."""
    query = (
        select(
            col(UsageRecord.task_id),
            col(Task.task_type),
            col(UsageRecord.model),
            col(UsageRecord.cost_pusd),
            col(Task.status),
        )
        .join(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(col(UsageRecord.purpose) == UsagePurpose.FALLBACK)
        .order_by(col(UsageRecord.task_id))
    )
    if run_id is not None:
        query = query.where(col(UsageRecord.run_id) == run_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [FallbackRow(int(i or 0), str(t), str(m), c, str(s)) for i, t, m, c, s in rows]


def run_spent_pusd(engine: Engine, run_id: int) -> int:
    """What the ledger holds for ``run_id`` so far (every purpose), in picodollars."""
    with engine.connect() as conn:
        total = conn.execute(
            select(func.coalesce(func.sum(col(UsageRecord.cost_pusd)), 0)).where(col(UsageRecord.run_id) == run_id)
        ).scalar_one()
    return int(total or 0)
