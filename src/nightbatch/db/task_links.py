"""Tasks linked to a batch row: a worker's claimed tasks linked to the pending row they go out in, many
per statement, and what the row's transitions then do to them (submitted, back to queued, handed over,
flagged canceled).

Each task is linked only while ``worker`` still holds its claim (compare-and-set on ``status`` and
``claimed_by``), exactly as one ``UPDATE`` per task did; but one statement per 10,000 tasks instead of one
per task: at 100,000 tasks a batch, single-row updates were most of a submit's time on PostgreSQL
(~2 ms a round trip, issue 20). PostgreSQL joins the update to the ids and custom_ids passed as two arrays
(``unnest``); SQLite, in-process, keeps one statement per task, which costs it microseconds.

The ``conn`` functions run inside the caller's transaction: a transition of the batch row, in
:mod:`nightbatch.db.pending_batches` (``insert_pending`` links, ``record_created`` and ``adopt`` submit,
``mark_create_failed`` requeues) or :mod:`nightbatch.db.batches` (``mark_canceling`` flags).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, case, text, update
from sqlmodel import col

from nightbatch.db.engine import dialect_name
from nightbatch.db.models import Task, TaskStatus

__all__ = ["flag_user_canceled", "hand_over_claims", "link_claimed_tasks", "mark_batch_submitted", "requeue_unsent"]

_PER_STATEMENT = 10_000
_POSTGRES = text(
    "UPDATE task SET batch_id = :batch_id, custom_id = d.custom_id, model = d.model, claimed_at = :now, "
    "updated_at = :now "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:custom_ids AS text[]), CAST(:models AS text[])) "
    "AS d(id, custom_id, model) "
    "WHERE task.id = d.id AND task.status = :claimed AND task.claimed_by = :worker "
    "RETURNING task.id"
)


def link_claimed_tasks(
    conn: Connection, *, batch_id: int, worker: str, links: Sequence[tuple[int, str, str]], now: datetime
) -> set[int]:
    """Set ``batch_id``, ``custom_id`` and ``model`` on each ``(task id, custom_id, model)`` that ``worker`` still
    holds claimed; the lease (``claimed_at``) is renewed to ``now``. Returns the ids linked; a missing id's
    claim was lost to another worker. Runs in the caller's transaction."""
    linked: set[int] = set()
    if dialect_name(conn.engine) == "postgresql":
        for start in range(0, len(links), _PER_STATEMENT):
            part = links[start : start + _PER_STATEMENT]
            params = {"batch_id": batch_id, "now": now, "worker": worker, "claimed": TaskStatus.CLAIMED.value,
                      "ids": [t for t, _, _ in part], "custom_ids": [c for _, c, _ in part],
                      "models": [m for _, _, m in part]}  # fmt: skip
            linked.update(conn.execute(_POSTGRES, params).scalars())
        return linked
    one = (
        update(Task)
        .where(
            col(Task.id) == bindparam("task_id"), col(Task.status) == TaskStatus.CLAIMED, col(Task.claimed_by) == worker
        )
        .values(
            batch_id=batch_id,
            custom_id=bindparam("link_custom_id"),
            model=bindparam("link_model"),
            claimed_at=now,
            updated_at=now,
        )
    )
    for task_id, custom_id, model in links:
        if conn.execute(one, {"task_id": task_id, "link_custom_id": custom_id, "link_model": model}).rowcount == 1:
            linked.add(task_id)
    return linked


# What a linked batch row's transitions do to its tasks. Each write but the cancel flag is a compare-and-set
# on ``status = 'claimed'``: a task the worker no longer holds is left alone.

_LINKED = (col(Task.status) == TaskStatus.CLAIMED,)
_CLAIM_BACK = case((col(Task.claims) > 0, col(Task.claims) - 1), else_=0)  # a live worker's claim is no death


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


def flag_user_canceled(conn: Connection, batch_id: int, *, now: datetime) -> None:
    """A user canceled the batch: its tasks end ``canceled`` when it is ingested (not retried)."""
    conn.execute(update(Task).where(col(Task.batch_id) == batch_id).values(user_canceled=True, updated_at=now))
