"""Reading what the database knows of one chunk of result lines: the hot lookups of ingest; and, once every
chunk is decided, the batch's tasks its results never mentioned (:func:`unsettled_tasks`).

Ingest decides each result from its task's current row. A chunk's tasks are read in one query (a few
thousand rows), so how the rows are read matters as much as the query: through the driver, without
SQLAlchemy's per-row conversions, by primary key, the payload decoded by :mod:`nightbatch.fastjson`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Text, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col

from nightbatch import custom_ids, fastjson
from nightbatch.db.models import Batch, Task, TaskAttempt, TaskStatus, UsagePurpose

__all__ = ["ChunkTasks", "FoundTask", "UnsettledTask", "unsettled_tasks"]


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


def _found(conn: Connection, sql: str, *params: Any) -> list[FoundTask]:
    """The rows of one of the statements below, read as the driver's own rows: no SQLAlchemy row processing
    (an enum built per status, the JSON decoder), which costs more than the query for thousands of rows."""
    found = []
    for r in conn.exec_driver_sql(sql, params).cursor.fetchall():
        payload = r[7] if not isinstance(r[7], str | bytes) else fastjson.loads(r[7])
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


def _routine_task_ids(listed: list[str]) -> dict[str, int]:
    """The task ids routine custom_ids (kind ``t``) name; other custom_ids are left out."""
    return {c: i for c in listed if (i := custom_ids.task_id(c)) is not None}


def _probed_task_ids(listed: list[str]) -> dict[str, int]:
    """The task ids calibration custom_ids (kind ``c``) name; other custom_ids are left out."""
    parsed = {c: custom_ids.parse(c) for c in listed}
    return {c: p.task_id for c, p in parsed.items() if p is not None and p.kind == custom_ids.Kind.CALIBRATION}


def _by_task_id(conn: Connection, named: dict[str, int]) -> dict[str, FoundTask]:
    """The tasks ``named`` (custom_id -> task id) names, whatever batch they point at, by custom_id."""
    if not named:
        return {}
    ids = list(set(named.values()))
    dialect = conn.dialect.name
    rows = _found(conn, _BY_ID_SQL[dialect], ids if dialect == "postgresql" else json.dumps(ids))
    by_id = {r.id: r for r in rows}
    return {c: by_id[i] for c, i in named.items() if i in by_id}


def _lookup_tasks(conn: Connection, batch_id: int, custom_ids: list[str]) -> dict[str, FoundTask]:
    """This batch's tasks among ``custom_ids``."""
    found = {c: r for c, r in _by_task_id(conn, _routine_task_ids(custom_ids)).items()
             if r.batch_id == batch_id and r.custom_id == c}  # fmt: skip
    rest = [c for c in custom_ids if c not in found]
    if rest:  # custom_ids of another form (or of no task of this batch: strangers, whose lookup finds nothing)
        dialect = conn.dialect.name
        listed: Any = rest if dialect == "postgresql" else json.dumps(rest)
        found.update(
            (r.custom_id, r) for r in _found(conn, _BY_CUSTOM_ID_SQL[dialect], batch_id, listed) if r.custom_id
        )
    return found


def _lookup_shadowed(conn: Connection, listed: list[str]) -> dict[str, FoundTask]:
    """Tasks named by shadow custom_ids (``s<task id>-<attempt>``): they belong to another batch."""
    return _by_task_id(conn, {c: i for c in listed if (i := custom_ids.shadow_task_id(c))})


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
    shadowed: dict[str, FoundTask]  # shadow requests' tasks (orphan and calibration batches: every custom_id's)
    strangers: dict[str, FoundTask]  # custom_ids this batch does not list, by the task id they name
    recorded: set[str]  # results already recorded (a second ingest)

    @classmethod
    def read(cls, conn: Connection, row: Batch, chunk: list[dict[str, Any]]) -> ChunkTasks:
        assert row.id is not None
        ids = [line["custom_id"] for line in chunk]
        shadow_ids = [c for c in ids if custom_ids.is_shadow(c)]
        if row.purpose == UsagePurpose.ORPHAN:
            return cls({}, _by_task_id(conn, _routine_task_ids(ids)), {}, _already_recorded(conn, row.id, ids))
        if row.purpose == UsagePurpose.CALIBRATION:  # probes name the task they sample, in no batch of theirs
            return cls({}, _by_task_id(conn, _probed_task_ids(ids)), {}, _already_recorded(conn, row.id, ids))
        tasks = _lookup_tasks(conn, row.id, [c for c in ids if not custom_ids.is_shadow(c)])
        shadowed = _lookup_shadowed(conn, shadow_ids) if shadow_ids else {}
        unlisted = [c for c in ids if c not in tasks and c not in shadowed]
        strangers = _by_task_id(conn, _routine_task_ids(unlisted))
        return cls(tasks, shadowed, strangers, _already_recorded(conn, row.id, ids))


# Settling what an ingest did not hear of.


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
