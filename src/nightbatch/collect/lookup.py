"""Reading what the database knows of one chunk of result lines: the hot lookups of ingest.

Ingest decides each result from its task's current row. A chunk's tasks are read in one query (a few
thousand rows), so how the rows are read matters as much as the query: through the driver, without
SQLAlchemy's per-row conversions, by primary key, the payload decoded by :mod:`nightbatch.fastjson`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, String, Text, any_, bindparam, func, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col

from nightbatch import fastjson
from nightbatch.db.models import Batch, Task, TaskAttempt
from nightbatch.quality.shadow import is_shadow_id, parse_shadow_id

__all__ = ["ChunkTasks", "FoundTask"]


class FoundTask(NamedTuple):
    """The columns of a task that deciding its result needs."""

    id: int
    custom_id: str | None
    task_type: str
    attempts: int
    status: str  # compared with TaskStatus members (StrEnum), without building one per row
    user_canceled: bool
    model: str | None
    payload: dict[str, Any]
    route_model: str | None
    batch_id: int | None


# Read without SQLAlchemy's per-row conversions (an enum built per status, the JSON decoder): thousands of
# rows per chunk, where they cost more than the query. The payload is decoded in _found().
_TASK_COLUMNS = (
    col(Task.id),
    col(Task.custom_id),
    col(Task.task_type),
    col(Task.attempts),
    type_coerce(col(Task.status), String()).label("status"),
    col(Task.user_canceled),
    col(Task.model),
    type_coerce(col(Task.payload), Text()).label("payload"),
    col(Task.route_model),
    col(Task.batch_id),
)


def _found(conn: Connection, statement: Any, *params: Any) -> list[FoundTask]:
    """Rows of ``statement`` (a compiled lookup below, or a Core select of _TASK_COLUMNS) as FoundTask."""
    if isinstance(statement, str):
        # The driver's own cursor rows: no SQLAlchemy row processing, for the thousands of rows of a chunk.
        rows: Any = conn.exec_driver_sql(statement, params).cursor.fetchall()
    else:
        rows = conn.execute(statement).all()
    found = []
    for r in rows:
        payload = r[7] if not isinstance(r[7], str | bytes) else fastjson.loads(r[7])  # psycopg decodes JSON itself
        found.append(FoundTask(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], payload, r[8], r[9]))
    return found


def _one_of(conn: Connection, column: Any, values: list[str]) -> ColumnElement[bool]:
    """``column IN values`` with the values as one parameter, not thousands (see the bulk statements below)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(Text())))  # type: ignore[no-any-return]
    listed = func.json_each(json.dumps(values)).table_valued("value")
    return column.in_(select(listed.c.value))  # type: ignore[no-any-return]


# The hot lookup, once per chunk, written for the driver: by primary key (a routine custom_id names its task,
# ``t<task id>-<attempt>``), the ids as one parameter, the payload as text for fastjson (psycopg would decode
# it with the slower json module). The batch is checked on the rows found, not in SQL: on the stale statistics
# of a freshly submitted batch the planner would rather walk the whole batch by its index, once per chunk.
_SELECT_FOUND = (
    "SELECT id, custom_id, task_type, attempts, status, user_canceled, model, {payload}, route_model, batch_id"
    " FROM task"
)
_BY_ID_SQL = {
    "postgresql": _SELECT_FOUND.format(payload="payload::text") + " WHERE id = ANY(CAST(%s AS bigint[]))",
    "sqlite": _SELECT_FOUND.format(payload="payload") + " WHERE id IN (SELECT value FROM json_each(?))",
}
# Any other custom_id, by its own index ("+ 0": as above, never by the batch's).
_BY_CUSTOM_ID_SQL = {
    "postgresql": _SELECT_FOUND.format(payload="payload::text") + " WHERE batch_id + 0 = %s AND custom_id = ANY(%s)",
    "sqlite": _SELECT_FOUND.format(payload="payload")
    + " WHERE batch_id + 0 = ? AND custom_id IN (SELECT value FROM json_each(?))",
}


def _routine_task_ids(custom_ids: list[str]) -> dict[str, int]:
    """The task ids routine custom_ids (``t<task id>-<attempt>``) name; other custom_ids are left out."""
    named = {}
    for custom_id in custom_ids:
        head = custom_id.partition("-")[0]
        if head[:1] == "t" and head[1:].isascii() and head[1:].isdigit():
            named[custom_id] = int(head[1:])
    return named


def _lookup_tasks(conn: Connection, batch_id: int, custom_ids: list[str]) -> dict[str, FoundTask]:
    """This batch's tasks among ``custom_ids``."""
    dialect = conn.dialect.name
    named = _routine_task_ids(custom_ids)
    ids: Any = list(named.values()) if dialect == "postgresql" else json.dumps(list(named.values()))
    wanted = set(custom_ids)
    by_id = _found(conn, _BY_ID_SQL[dialect], ids)
    found = {r.custom_id: r for r in by_id if r.batch_id == batch_id and r.custom_id in wanted}
    rest = [c for c in custom_ids if c not in found]
    if rest:  # custom_ids of another form (or of no task of this batch: strangers, whose lookup finds nothing)
        listed: Any = rest if dialect == "postgresql" else json.dumps(rest)
        found.update(
            (r.custom_id, r) for r in _found(conn, _BY_CUSTOM_ID_SQL[dialect], batch_id, listed) if r.custom_id
        )
    return found


def _lookup_by_task_id(conn: Connection, custom_ids: list[str]) -> dict[str, FoundTask]:
    """Tasks named by routine custom_ids (``t<task id>-<attempt>``) regardless of the batch they point at."""
    ids = _routine_task_ids(custom_ids)
    rows = _found(conn, select(*_TASK_COLUMNS).where(col(Task.id).in_(list(ids.values()))))
    by_id = {r.id: r for r in rows}
    return {c: by_id[i] for c, i in ids.items() if i in by_id}


def _lookup_shadowed(conn: Connection, custom_ids: list[str]) -> dict[str, FoundTask]:
    """Tasks named by shadow custom_ids (``s<task id>-<attempt>``): they belong to another batch."""
    ids = {c: parse_shadow_id(c) for c in custom_ids}
    rows = _found(conn, select(*_TASK_COLUMNS).where(col(Task.id).in_([i for i in ids.values() if i])))
    by_id = {r.id: r for r in rows}
    return {c: by_id[i] for c, i in ids.items() if i in by_id}


def _already_recorded(conn: Connection, batch_id: int, custom_ids: list[str]) -> set[str]:
    """custom_ids of this batch whose result is already recorded (its attempt row, written with its ledger row)."""
    rows = conn.execute(
        select(col(TaskAttempt.custom_id)).where(
            col(TaskAttempt.batch_id) == batch_id, _one_of(conn, col(TaskAttempt.custom_id), custom_ids)
        )
    ).all()
    return {r[0] for r in rows}


@dataclass
class ChunkTasks:
    """What the database says about one chunk's custom_ids, read before any of the chunk is decided."""

    tasks: dict[str, FoundTask]  # this batch's own requests
    shadowed: dict[str, FoundTask]  # shadow requests' tasks (orphan batches: every custom_id's task)
    strangers: dict[str, FoundTask]  # custom_ids this batch does not list, by the task id they name
    recorded: set[str]  # results already recorded (a second ingest)

    @classmethod
    def read(cls, conn: Connection, row: Batch, chunk: list[dict[str, Any]]) -> ChunkTasks:
        assert row.id is not None
        custom_ids = [line["custom_id"] for line in chunk]
        shadow_ids = [c for c in custom_ids if is_shadow_id(c)]
        if row.purpose == "orphan":
            return cls({}, _lookup_by_task_id(conn, custom_ids), {}, _already_recorded(conn, row.id, custom_ids))
        tasks = _lookup_tasks(conn, row.id, [c for c in custom_ids if not is_shadow_id(c)])
        shadowed = _lookup_shadowed(conn, shadow_ids) if shadow_ids else {}
        unlisted = [c for c in custom_ids if c not in tasks and c not in shadowed]
        strangers = _lookup_by_task_id(conn, unlisted) if unlisted else {}
        return cls(tasks, shadowed, strangers, _already_recorded(conn, row.id, custom_ids))
