"""Read-only views of the tasks and batches of a run: outcome counts, batch progress, task listings.

A task belongs to the run of the batch it was last sent in (``task.batch_id -> batch.run_id``). Tasks that
failed before sending have no batch; the flow counts those itself (see :mod:`nightbatch.outcome_policy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlmodel import col

from nightbatch.db.models import Batch, BatchStatus, CacheRole, Run, Task, TaskAttempt, UsagePurpose, UsageRecord

__all__ = [
    "BatchProgressRow",
    "TaskDetail",
    "TaskRow",
    "batch_label",
    "batch_progress",
    "batch_role",
    "list_tasks",
    "run_failures",
    "run_open_batches",
    "run_record",
    "run_task_counts",
    "task_detail",
]

UNFINISHED = (BatchStatus.PENDING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELING, BatchStatus.ENDED)
"""Batches not yet ingested: results may still come (``ended`` waits for its ingest)."""


def _of_run(run_id: int) -> Any:
    """Tasks last sent in a batch of the run, or settled by its deadline after one of its batches gave them back
    (answered real-time, failed, or left queued: ``batch_id`` is NULL then; see nightbatch.deadline)."""
    batches = select(col(Batch.id)).where(col(Batch.run_id) == run_id)
    given_back = select(col(TaskAttempt.task_id)).where(col(TaskAttempt.batch_id).in_(batches))
    fell_back = select(col(UsageRecord.task_id)).where(
        col(UsageRecord.run_id) == run_id, col(UsageRecord.purpose) == UsagePurpose.FALLBACK
    )
    return or_(
        col(Task.batch_id).in_(batches),
        and_(col(Task.batch_id).is_(None), or_(col(Task.id).in_(fell_back), col(Task.id).in_(given_back))),
    )


def run_task_counts(engine: Engine, run_id: int) -> dict[str, int]:
    """Tasks of run ``run_id`` (:func:`_of_run`), by current status."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.status), func.count()).where(_of_run(run_id)).group_by(col(Task.status))
        ).all()
    return {str(status): int(n) for status, n in rows}


def run_failures(engine: Engine, run_id: int) -> dict[str, int]:
    """Permanently failed tasks of run ``run_id`` (:func:`_of_run`), by error type."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.error_type), func.count())
            .where(_of_run(run_id), col(Task.status) == "failed")
            .group_by(col(Task.error_type))
        ).all()
    return {str(error or "unknown error"): int(n) for error, n in rows}


def run_open_batches(engine: Engine, run_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(col(Batch.run_id) == run_id, col(Batch.status).in_(UNFINISHED))
            ).scalar_one()
        )


_CACHE_ROLE_WORDS = {CacheRole.PILOT: "pilot", CacheRole.FANOUT: "fan-out"}


def batch_role(purpose: str, cache_role: str | None, *, shadow: bool) -> str:
    """What a batch is for, in an operator's words: ``pilot`` (one request writing its group's cached prefix),
    ``fan-out`` (the rest of the group, reading it), ``uncached`` (no cache breakpoint); prefixed ``shadow``
    when its requests are a second model's answers to sampled tasks. Batches not of the queue's work are named
    by their purpose as the cost report names them: ``calibration``, ``orphan``, ``priming``."""
    if purpose != UsagePurpose.TASK:
        return str(purpose)
    words = _CACHE_ROLE_WORDS[CacheRole(cache_role)] if cache_role else "uncached"
    return f"shadow {words}" if shadow else words


@dataclass(frozen=True)
class BatchProgressRow:
    """One batch of a run, with the request counts the last poll saw, and its role (:func:`batch_role`)."""

    batch_id: int
    provider_batch_id: str | None
    task_type: str
    model: str
    status: str
    requests: int
    processing: int
    succeeded: int
    errored: int
    expired: int
    canceled: int
    created_at: datetime
    ended_at: datetime | None
    role: str

    @property
    def done(self) -> int:
        return self.requests - self.processing if self.status != BatchStatus.PENDING else 0


def _progress_row(r: Any) -> BatchProgressRow:
    """A :func:`batch_progress` row: the batch's columns in :class:`BatchProgressRow` order, then its purpose
    and cache role (which make its role)."""
    task_type, purpose, status = r[2], str(r[13]), str(r[4])
    # No task row points at a batch of shadow requests (their tasks point at the routine batch), nor, once they
    # have moved on, at a routine batch whose tasks all expired or escalated: those are told apart by the
    # attempts its results left (r[15]). A create that failed sent nothing, its tasks went back to the queue.
    shadow = task_type is None and purpose == UsagePurpose.TASK and status != BatchStatus.CREATE_FAILED
    task_type = task_type or (r[15] if shadow else None)
    shadow = shadow and task_type is None
    unsent = status == BatchStatus.CREATE_FAILED
    shown_type = str(task_type or ("(shadow requests)" if shadow else "(not sent)" if unsent else f"({purpose})"))
    return BatchProgressRow(
        batch_id=r[0], provider_batch_id=r[1], task_type=shown_type,
        model=r[3], status=str(r[4]), requests=r[5], processing=r[6], succeeded=r[7], errored=r[8], expired=r[9],
        canceled=r[10], created_at=r[11], ended_at=r[12], role=batch_role(purpose, r[14], shadow=shadow),
    )  # fmt: skip


def batch_progress(engine: Engine, run_id: int | None = None, *, open_only: bool = False) -> list[BatchProgressRow]:
    """The batches of run ``run_id`` (or all open ones), oldest first, each with its (first) task type."""
    task_type = select(func.min(col(Task.task_type))).where(col(Task.batch_id) == col(Batch.id)).scalar_subquery()
    routine_attempt_type = (
        select(func.min(col(TaskAttempt.task_type)))
        .where(col(TaskAttempt.batch_id) == col(Batch.id), col(TaskAttempt.purpose) == UsagePurpose.TASK)
        .scalar_subquery()
    )
    query = select(
        col(Batch.id), col(Batch.provider_batch_id), task_type, col(Batch.model), col(Batch.status),
        col(Batch.request_count), col(Batch.processing_count), col(Batch.succeeded_count),
        col(Batch.errored_count), col(Batch.expired_count), col(Batch.canceled_count), col(Batch.created_at),
        col(Batch.ended_at), col(Batch.purpose), col(Batch.cache_role), routine_attempt_type,
    ).order_by(col(Batch.id))  # fmt: skip
    if run_id is not None:
        query = query.where(col(Batch.run_id) == run_id)
    if open_only:
        query = query.where(col(Batch.status).in_(UNFINISHED))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [_progress_row(r) for r in rows]


@dataclass(frozen=True)
class TaskRow:
    id: int
    task_type: str
    status: str
    model: str | None
    attempts: int
    error_type: str | None
    batch_id: int | None
    updated_at: datetime


def list_tasks(
    engine: Engine,
    *,
    task_type: str | None = None,
    status: str | None = None,
    error: str | None = None,
    run_id: int | None = None,
    limit: int = 50,
) -> list[TaskRow]:
    """Tasks matching every given filter, newest change first. ``error`` matches the error type's start."""
    query = select(
        col(Task.id), col(Task.task_type), col(Task.status), col(Task.model), col(Task.attempts),
        col(Task.error_type), col(Task.batch_id), col(Task.updated_at),
    )  # fmt: skip
    if task_type:
        query = query.where(col(Task.task_type) == task_type)
    if status:
        query = query.where(col(Task.status) == status)
    if error:
        query = query.where(col(Task.error_type).startswith(error))
    if run_id is not None:
        query = query.join(Batch, col(Batch.id) == col(Task.batch_id)).where(col(Batch.run_id) == run_id)
    query = query.order_by(col(Task.updated_at).desc(), col(Task.id).desc()).limit(limit)
    with engine.connect() as conn:
        return [TaskRow(*row) for row in conn.execute(query).all()]


@dataclass(frozen=True)
class TaskDetail:
    """One task: its row, every attempt (routine, shadow, calibration) and what each response cost."""

    task: dict[str, Any]
    attempts: list[dict[str, Any]]
    costs: list[dict[str, Any]]


def task_detail(engine: Engine, task_id: int) -> TaskDetail | None:
    with engine.connect() as conn:
        task = conn.execute(select(*Task.__table__.columns).where(col(Task.id) == task_id)).mappings().first()  # type: ignore[attr-defined]
        if task is None:
            return None
        attempts = conn.execute(
            select(
                col(TaskAttempt.attempt), col(TaskAttempt.purpose), col(TaskAttempt.model), col(TaskAttempt.batch_id),
                col(TaskAttempt.result_type), col(TaskAttempt.check_passed), col(TaskAttempt.check_reason),
                col(TaskAttempt.created_at),
            ).where(col(TaskAttempt.task_id) == task_id).order_by(col(TaskAttempt.id))
        ).mappings().all()  # fmt: skip
        costs = conn.execute(
            select(
                col(UsageRecord.model), col(UsageRecord.purpose), col(UsageRecord.service_tier),
                col(UsageRecord.batch_id), col(UsageRecord.input_tokens), col(UsageRecord.output_tokens),
                col(UsageRecord.cache_read_tokens), col(UsageRecord.cache_write_5m_tokens),
                col(UsageRecord.cache_write_1h_tokens), col(UsageRecord.cost_pusd),
            ).where(col(UsageRecord.task_id) == task_id).order_by(col(UsageRecord.id))
        ).mappings().all()  # fmt: skip
    return TaskDetail(task=dict(task), attempts=[dict(a) for a in attempts], costs=[dict(c) for c in costs])


def batch_label(engine: Engine, batch_id: int) -> tuple[str, str, int | None]:
    """A batch's (first) task type, model and run id, for naming it in events."""
    task_type = select(func.min(col(Task.task_type))).where(col(Task.batch_id) == batch_id).scalar_subquery()
    with engine.connect() as conn:
        query = select(task_type, col(Batch.model), col(Batch.run_id)).where(col(Batch.id) == batch_id)
        row = conn.execute(query).one()
    return str(row[0] or "-"), str(row[1]), row[2]


def run_record(engine: Engine, run_id: int) -> tuple[str, dict[str, Any]] | None:
    """A run's kind and totals (``{}`` while it has none)."""
    with engine.connect() as conn:
        row = conn.execute(select(col(Run.kind), col(Run.totals)).where(col(Run.id) == run_id)).first()
    return None if row is None else (str(row[0]), dict(row[1] or {}))
