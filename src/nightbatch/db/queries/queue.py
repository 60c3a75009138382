"""The queued tasks a forecast prices, streamed from the database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import col

from nightbatch.db.models import Task, TaskStatus

__all__ = ["QueuedTask", "queued_tasks"]

_STREAM_ROWS = 2000
"""Rows fetched at a time: a large queue is priced without holding it all in memory."""


@dataclass(frozen=True)
class QueuedTask:
    """A queued task: what building its request needs."""

    id: int
    task_type: str
    payload: dict[str, Any]
    model_override: str | None


def queued_tasks(engine: Engine, task_types: list[str] | None = None) -> Iterator[QueuedTask]:
    """Every queued task (of ``task_types``, if given), streamed; the connection stays open while iterating."""
    query = select(col(Task.id), col(Task.task_type), col(Task.payload), col(Task.model_override)).where(
        col(Task.status) == TaskStatus.QUEUED
    )
    if task_types:
        query = query.where(col(Task.task_type).in_(task_types))
    with engine.connect() as conn:
        for task_id, task_type, payload, override in conn.execution_options(yield_per=_STREAM_ROWS).execute(query):
            yield QueuedTask(task_id, task_type, payload, override)
