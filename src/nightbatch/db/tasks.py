"""The task queue's transitions: claim, release, fail and settle tasks."""

# --- from i17-ingest ---

from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, select
from sqlmodel import col

from nightbatch.db.models import Task, TaskStatus


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
