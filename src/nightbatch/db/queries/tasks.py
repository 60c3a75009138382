"""The tasks a selection billed, and how they ended."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import Task, UsagePurpose, UsageRecord
from nightbatch.db.queries.selection import Selection

__all__ = ["BilledTask", "billed_tasks", "task_outcomes"]


@dataclass(frozen=True)
class BilledTask:
    """One task's billed response(s) on one model in the selection, and how the task ended.

    ``latest`` is True when the task's newest billed response (over the whole ledger) is on this model
    in this selection: the task's status is the verdict on that response.
    """

    task_id: int
    task_type: str
    model: str
    latest: bool
    status: str
    error_type: str | None


def billed_tasks(engine: Engine, selection: Selection) -> list[BilledTask]:
    """One row per (task, model, newest-or-not) among the selection's task responses."""
    task_id = col(UsageRecord.task_id)
    is_task = col(UsageRecord.purpose) == UsagePurpose.TASK
    in_selection = select(task_id).where(is_task, *selection.usage_filter())
    newest = (
        select(task_id.label("task_id"), func.max(col(UsageRecord.id)).label("newest_id"))
        .where(is_task, task_id.in_(in_selection))
        .group_by(task_id)
        .subquery()
    )
    stmt = (
        select(
            task_id,
            col(Task.task_type),
            col(UsageRecord.model),
            (col(UsageRecord.id) == newest.c.newest_id).label("latest"),
            col(Task.status),
            col(Task.error_type),
        )
        .join(Task, col(Task.id) == task_id)
        .join(newest, newest.c.task_id == task_id)
        .where(is_task, *selection.usage_filter())
        .distinct()
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        BilledTask(int(tid), task_type, model, bool(latest), str(status), error_type)
        for tid, task_type, model, latest, status, error_type in rows
    ]


def task_outcomes(engine: Engine, selection: Selection | None = None) -> dict[str, int]:
    """Tasks by current status: those with a usage row in ``selection``, or every task (None)."""
    query = select(col(Task.status), func.count()).group_by(col(Task.status))
    if selection is not None:
        billed = select(col(UsageRecord.task_id)).where(*selection.usage_filter())
        query = query.where(col(Task.id).in_(billed))
    with engine.connect() as conn:
        return {str(status): n for status, n in conn.execute(query).all()}
