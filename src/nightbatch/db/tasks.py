"""Task rows of the queue: claim, release, fail and settle."""

# --- from i17-submit ---
# The task side of submitting: linking claimed tasks to their pending batch row, what a create's outcome
# does to them, and failing tasks whose request could not be built. Every write is a compare-and-set on
# ``status = 'claimed'`` (and the claimer where it matters): a task the worker no longer holds is left alone.
# The ``conn`` functions run inside the caller's transaction (a batch transition of :mod:`nightbatch.db.batches`).

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, Engine, case, func, select, update
from sqlmodel import col

from nightbatch.db.models import Task, TaskStatus

_LINKED = (col(Task.status) == TaskStatus.CLAIMED,)
_CLAIM_BACK = case((col(Task.claims) > 0, col(Task.claims) - 1), else_=0)  # a live worker's claim is no death


class TaskFailure(Protocol):
    """Why one claimed task fails before it is sent (e.g. :class:`nightbatch.submit.plan.BuildFailure`)."""

    @property
    def task_id(self) -> int: ...
    @property
    def error_type(self) -> str: ...
    @property
    def message(self) -> str: ...


def link_to_batch(conn: Connection, task_id: int, *, worker: str, batch_id: int, custom_id: str, model: str,
                  now: datetime) -> bool:  # fmt: skip
    """Link a task ``worker`` still claims to its pending batch row; False when the claim was lost.

    ``claimed_at`` is renewed: the task's lease is never older than its batch row's.
    """
    linked = conn.execute(
        update(Task)
        .where(col(Task.id) == task_id, *_LINKED, col(Task.claimed_by) == worker)
        .values(batch_id=batch_id, custom_id=custom_id, model=model, claimed_at=now, updated_at=now)
    )
    return linked.rowcount == 1


def mark_batch_submitted(conn: Connection, batch_id: int, *, now: datetime) -> None:
    """The batch's create was accepted: its claimed tasks are ``submitted``.

    This is where an attempt counts (not at claim, so a worker that dies before sending burns no retry),
    and the task's count of dead claims starts over.
    """
    conn.execute(
        update(Task)
        .where(col(Task.batch_id) == batch_id, *_LINKED)
        .values(
            status=TaskStatus.SUBMITTED,
            attempts=col(Task.attempts) + 1,
            claims=0,
            claimed_by=None,
            claimed_at=None,
            updated_at=now,
        )
    )


def requeue_unsent(conn: Connection, batch_id: int, *, worker_died: bool, now: datetime) -> None:
    """The batch was never created: its claimed tasks go back to ``queued``, unlinked, with no attempt counted.

    The claim is taken back from ``claims`` unless ``worker_died``: those deaths count towards the poison
    rule (:mod:`nightbatch.queue.claim`).
    """
    conn.execute(
        update(Task)
        .where(col(Task.batch_id) == batch_id, *_LINKED)
        .values(
            status=TaskStatus.QUEUED,
            claims=col(Task.claims) if worker_died else _CLAIM_BACK,
            batch_id=None,
            custom_id=None,
            claimed_by=None,
            claimed_at=None,
            updated_at=now,
        )
    )


def hand_over_claims(engine: Engine, batch_id: int) -> None:
    """A live worker leaves its pending row to the reconciler: its tasks' claim is not a death (poison rule)."""
    with engine.begin() as conn:
        conn.execute(update(Task).where(col(Task.batch_id) == batch_id, *_LINKED).values(claims=_CLAIM_BACK))


def fail_claimed(engine: Engine, failures: Iterable[TaskFailure], *, now: datetime) -> None:
    """Fail claimed tasks whose request could not be built or sent (one transaction)."""
    failures = list(failures)
    if not failures:
        return
    with engine.begin() as conn:
        for failure in failures:
            conn.execute(
                update(Task)
                .where(col(Task.id) == failure.task_id, *_LINKED)
                .values(
                    status=TaskStatus.FAILED,
                    error_type=failure.error_type,
                    error_message=failure.message[:2000],
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=now,
                )
            )


def flag_user_canceled(conn: Connection, batch_id: int, *, now: datetime) -> None:
    """A user canceled the batch: its tasks end ``canceled`` when it is ingested (not retried)."""
    conn.execute(update(Task).where(col(Task.batch_id) == batch_id).values(user_canceled=True, updated_at=now))


def queued_outside(engine: Engine, task_types: Collection[str]) -> dict[str, int]:
    """Queued tasks by type, for the types not in ``task_types``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.task_type), func.count())
            .where(col(Task.status) == TaskStatus.QUEUED, col(Task.task_type).not_in(sorted(task_types)))
            .group_by(col(Task.task_type))
        ).all()
    return {str(t): int(n) for t, n in rows}


# --- from i17-ingest: settling what ingest did not hear of, and calibration's samples ---


class UnsettledTask(NamedTuple):
    """A task still ``submitted`` in a batch whose results were all read: ingest decides what becomes of it."""

    id: int
    attempts: int
    route_model: str | None
    custom_id: str | None


def unsettled_tasks(conn: Connection, batch_id: int) -> list[UnsettledTask]:
    """Tasks of ``batch_id`` still ``submitted`` (the results never mentioned them), in the caller's transaction."""
    rows = conn.execute(
        select(col(Task.id), col(Task.attempts), col(Task.route_model), col(Task.custom_id)).where(
            col(Task.batch_id) == batch_id, col(Task.status) == TaskStatus.SUBMITTED
        )
    ).all()
    return [UnsettledTask(r.id, r.attempts, r.route_model, r.custom_id) for r in rows]


def first_tasks_of_type(engine: Engine, task_type: str, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """``(id, payload)`` of the first ``limit`` tasks of a type (lowest ids, any status): a calibration's sample."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.id), col(Task.payload))
            .where(col(Task.task_type) == task_type)
            .order_by(col(Task.id))
            .limit(limit)
        ).all()
    return [(int(r[0]), r[1]) for r in rows]


def payloads_of_type(engine: Engine, task_type: str) -> dict[int, dict[str, Any]]:
    """Every task's payload of a type, by task id."""
    with engine.connect() as conn:
        rows = conn.execute(select(col(Task.id), col(Task.payload)).where(col(Task.task_type) == task_type))
        return {int(task_id): payload for task_id, payload in rows}
