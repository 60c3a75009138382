"""Stage tasks: inserting the tasks a pipeline stage enqueues, idempotently, inside the caller's transaction.

A stage task's idempotency key is ``stage:<upstream task id>:<stage>`` and ``task_stage`` is unique on
``(upstream_task_id, stage)``: whatever ingests an upstream result twice (a re-ingest, a crash and a
retry) finds the row there and adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, literal_column, select

from nightbatch.db.engine import insert_ignoring_conflicts
from nightbatch.db.models import Task, TaskStage, TaskStatus, UsageRecord

__all__ = [
    "FallbackSuccess",
    "StageParent",
    "StageTask",
    "fallback_successes_without_stages",
    "insert_stage_tasks",
    "stage_key",
    "stage_parents",
]

_TASK: Table = Task.__table__  # type: ignore[attr-defined]
_STAGE: Table = TaskStage.__table__  # type: ignore[attr-defined]
_CHUNK = 500  # rows per statement: well under SQLite's bound-parameter limit


def stage_key(upstream_task_id: int, stage: str) -> str:
    """The idempotency key of the task ``stage`` enqueues for ``upstream_task_id``."""
    return f"stage:{upstream_task_id}:{stage}"


@dataclass(frozen=True)
class StageParent:
    """What a stage task inherits from its upstream task: its pipeline item, priority and deadline."""

    root_task_id: int
    priority: int
    deadline: datetime | None


@dataclass(frozen=True)
class StageTask:
    """One task a stage enqueues (``error`` set: enqueued failed, with the reason its payload could not be built)."""

    upstream_task_id: int
    stage: str
    pipeline: str
    payload: dict[str, Any]
    parent: StageParent
    error: str | None = None


def stage_parents(conn: Connection, upstream_ids: Iterable[int]) -> dict[int, StageParent]:
    """For each upstream task: its pipeline item (its own root, or itself at the first stage), priority, deadline."""
    ids = sorted(set(upstream_ids))
    found: dict[int, StageParent] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            select(_TASK.c.id, _TASK.c.priority, _TASK.c.deadline, _STAGE.c.root_task_id)
            .select_from(_TASK.outerjoin(_STAGE, _STAGE.c.task_id == _TASK.c.id))
            .where(_TASK.c.id.in_(ids[start : start + _CHUNK]))
        ).all()
        for task_id, priority, deadline, root in rows:
            found[int(task_id)] = StageParent(int(root if root is not None else task_id), int(priority), deadline)
    return found


def insert_stage_tasks(conn: Connection, tasks: Sequence[StageTask], now: datetime) -> int:
    """Insert each stage task and its ``task_stage`` row unless they exist; returns how many were new."""
    inserted = 0
    dialect = conn.dialect.name
    for start in range(0, len(tasks), _CHUNK):
        chunk = tasks[start : start + _CHUNK]
        by_key = {stage_key(t.upstream_task_id, t.stage): t for t in chunk}
        rows = [
            {
                "task_type": t.stage, "payload": t.payload, "idempotency_key": key,
                "status": TaskStatus.FAILED if t.error else TaskStatus.QUEUED, "attempts": 0, "claims": 0,
                "priority": t.parent.priority, "deadline": t.parent.deadline, "user_canceled": False,
                "error_type": "invalid_stage_input" if t.error else None, "error_message": t.error,
                "source": f"stage:{t.pipeline}", "created_at": now, "updated_at": now,
            }
            for key, t in by_key.items()
        ]  # fmt: skip
        insert = insert_ignoring_conflicts(_TASK, dialect, ["idempotency_key"])
        new = conn.execute(insert.values(rows).returning(_TASK.c.id, _TASK.c.idempotency_key)).all()
        if not new:
            continue
        links = []
        for task_id, key in new:
            t = by_key[key]
            links.append({"task_id": int(task_id), "upstream_task_id": t.upstream_task_id,
                          "root_task_id": t.parent.root_task_id, "pipeline": t.pipeline, "stage": t.stage,
                          "created_at": now})  # fmt: skip
        conn.execute(insert_ignoring_conflicts(_STAGE, dialect, ["upstream_task_id", "stage"]).values(links))
        inserted += len(new)
    return inserted


@dataclass(frozen=True)
class FallbackSuccess:
    """A task the real-time deadline fallback answered: where its output is, for its stages."""

    task_id: int
    task_type: str
    payload: dict[str, Any]
    output_inline: Any
    output_uri: str | None
    output_line: int | None


def fallback_successes_without_stages(
    conn: Connection, upstream_types: Sequence[str], since: datetime
) -> list[FallbackSuccess]:
    """Tasks of ``upstream_types`` answered real-time (purpose ``fallback``) since ``since`` with no stage task."""
    if not upstream_types:
        return []
    usage = UsageRecord.__table__  # type: ignore[attr-defined]
    # Driven by the partial index on fallback rows (a literal predicate, so the planner can use it), the tasks
    # found by primary key; their status and type are filtered here, not by an index that would walk them all.
    answered = select(usage.c.task_id).where(
        usage.c.purpose == literal_column("'fallback'"), usage.c.created_at >= since
    )
    staged = select(_STAGE.c.id).where(_STAGE.c.upstream_task_id == _TASK.c.id).exists()
    rows = conn.execute(
        select(
            _TASK.c.id,
            _TASK.c.task_type,
            _TASK.c.payload,
            _TASK.c.output_inline,
            _TASK.c.output_uri,
            _TASK.c.output_line,
            _TASK.c.status,
        ).where(_TASK.c.id.in_(answered), ~staged)
    ).all()
    wanted = set(upstream_types)
    found = {
        int(i): FallbackSuccess(int(i), str(t), p, inline, uri, line)
        for i, t, p, inline, uri, line, status in rows
        if t in wanted and status == TaskStatus.SUCCEEDED.value
    }
    return list(found.values())
