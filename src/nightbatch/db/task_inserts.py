"""Tasks into the queue: one task, or a whole task file in chunks inside one transaction, idempotent by key.

Inserting a key that is already there changes nothing (a re-run of a file is safe); the same key for a
different task is a conflict, told apart and optionally replaced by :mod:`nightbatch.db.task_conflicts`.
:mod:`nightbatch.queue.enqueue` keeps the decisions (validating task files, chunking, idempotency keys) and
calls these; the inserted tasks are claimed through :mod:`nightbatch.db.task_claims`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table, bindparam, select, text

from nightbatch.db.engine import dialect_name, insert_ignoring_conflicts
from nightbatch.db.models import TaskStatus, UTCDateTime, metadata
from nightbatch.db.task_conflicts import conflicting, replace_queued
from nightbatch.errors import StateError

__all__ = ["ChunkResult", "NewTask", "TaskInserter", "insert_task", "inserting_tasks"]

_TASK: Table = metadata.tables["task"]


class NewTask(Protocol):
    """What an insert needs of a task (:class:`nightbatch.queue.taskfile.TaskSpec` is one)."""

    @property
    def task_type(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def key(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def deadline(self) -> datetime | None: ...
    @property
    def model_override(self) -> str | None: ...


def _row(task: NewTask, source: str | None, now: datetime) -> dict[str, Any]:
    return {
        "task_type": task.task_type,
        "payload": task.payload,
        "idempotency_key": task.key,
        "status": TaskStatus.QUEUED,
        "attempts": 0,
        "priority": task.priority,
        "deadline": task.deadline,
        "model_override": task.model_override,
        "source": source,
        "user_canceled": False,
        "created_at": now,
        "updated_at": now,
    }


def insert_task(engine: Engine, task: NewTask, *, source: str | None, now: datetime) -> tuple[int, bool]:
    """Insert ``task`` as ``queued`` unless its key exists: ``(task id, inserted)``; the existing row is
    left exactly as it is."""
    with engine.begin() as conn:
        stmt = insert_ignoring_conflicts(_TASK, dialect_name(conn), ["idempotency_key"])
        new_id = conn.execute(stmt.values(_row(task, source, now)).returning(_TASK.c.id)).scalar()
        if new_id is not None:
            return int(new_id), True
        existing = conn.execute(select(_TASK.c.id).where(_TASK.c.idempotency_key == task.key)).scalar()
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish without a delete
        raise StateError(f"task with key {task.key!r} conflicted on insert but cannot be found")
    return int(existing), False


# A chunk travels as ONE parameter, a JSON array of rows that the database unpacks itself. Binding
# thousands of rows x columns as separate parameters costs far more client CPU (psycopg parses every
# placeholder of a huge statement in Python) than the database's JSON functions do.
_COLUMNS = (
    "task_type, payload, idempotency_key, priority, deadline, model_override,"
    " status, attempts, source, user_canceled, created_at, updated_at"
)
_BULK_INSERT = {
    "postgresql": f"""
        INSERT INTO task ({_COLUMNS})
        SELECT r.t, r.p, r.k, r.pr, r.d, r.m, :status, 0, :source, false, :now, :now
        FROM json_to_recordset(CAST(:rows AS json))
            AS r(t varchar, p json, k varchar, pr integer, d timestamptz, m varchar)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING task_type, idempotency_key""",
    "sqlite": f"""
        INSERT INTO task ({_COLUMNS})
        SELECT json_extract(value, '$.t'), json_extract(value, '$.p'), json_extract(value, '$.k'),
               json_extract(value, '$.pr'), json_extract(value, '$.d'), json_extract(value, '$.m'),
               :status, 0, :source, 0, :now, :now
        FROM json_each(:rows)
        WHERE true  -- SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING task_type, idempotency_key""",
}


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk insert did: the types of the rows inserted, the conflicting keys, how many replaced."""

    inserted_types: list[str]
    conflicts: list[str]
    replaced: int


# A load at least this large refreshes the planner's statistics of the task table (a sample; well under a second).
ANALYZE_AFTER_INSERTING = 10_000


class TaskInserter:
    """Inserts chunks of tasks inside one open transaction (see :func:`inserting_tasks`)."""

    def __init__(self, conn: Connection, source: str, now: datetime, encode: Callable[[Any], str]) -> None:
        self._conn = conn
        self._encode = encode
        self._insert = text(_BULK_INSERT[conn.dialect.name]).bindparams(bindparam("now", type_=UTCDateTime()))
        self._params = {"status": TaskStatus.QUEUED.value, "source": source, "now": now}
        self.inserted = 0
        # dialect_impl: the text SQLite's DateTime really stores, so bulk and ORM inserts sort alike.
        dialect = conn.dialect
        self._store_datetime: Callable[[Any], Any] = UTCDateTime().dialect_impl(dialect).bind_processor(dialect) or (
            lambda value: value
        )

    def encode(self, task: NewTask) -> str:
        """One task as a JSON object of the chunk parameter; its deadline as the column type stores it."""
        deadline = None
        if task.deadline is not None:  # UTC text on SQLite, ISO 8601 for PostgreSQL
            stored = self._store_datetime(task.deadline)
            deadline = stored.isoformat() if isinstance(stored, datetime) else str(stored)
        return self._encode(
            {"t": task.task_type, "p": task.payload, "k": task.key, "pr": task.priority, "d": deadline,
             "m": task.model_override}
        )  # fmt: skip

    def insert(self, chunk: Sequence[NewTask], encoded: str, *, replace: bool) -> ChunkResult:
        """Insert ``chunk`` (``encoded``: the JSON array of its :meth:`encode` rows), skipping keys already
        there; keys there for a *different* task are conflicts, replaced when ``replace`` and still queued."""
        returned = self._conn.execute(self._insert, {**self._params, "rows": encoded}).all()
        types = [str(r[0]) for r in returned]
        self.inserted += len(types)
        if len(returned) == len(chunk):
            return ChunkResult(types, [], 0)
        # Keys already there: a re-run (same task) is fine; the same key for a different task is not.
        new = {str(r[1]) for r in returned}
        old = {task.key: task for task in chunk if task.key not in new}
        clashing = conflicting(self._conn, {k: (t.task_type, t.payload) for k, t in old.items()}, self._encode)
        replaced = 0
        if replace and clashing:
            replaced = replace_queued(self._conn, [_replacement(old[key]) for key in clashing])
        return ChunkResult(types, clashing, replaced)


def _replacement(task: NewTask) -> dict[str, Any]:
    return {"key": task.key, "task_type": task.task_type, "payload": task.payload, "priority": task.priority,
            "deadline": task.deadline, "model_override": task.model_override}  # fmt: skip


@contextmanager
def inserting_tasks(
    engine: Engine, *, source: str, now: datetime, encode: Callable[[Any], str]
) -> Iterator[TaskInserter]:
    """One transaction for a whole task file: committed on leaving, rolled back if the body raises.

    ``encode`` serializes JSON (the queue's canonical form), for the chunk parameter and for comparing
    payloads of conflicting keys.
    """
    with engine.begin() as conn:
        inserter = TaskInserter(conn, source, now, encode)
        yield inserter
    if inserter.inserted >= ANALYZE_AFTER_INSERTING:
        # The planner's row counts are otherwise those of before the load until autovacuum's next analyze
        # (a minute or more away): believing a few hundred tasks queued, PostgreSQL sorts all million
        # instead of reading the claim-order index (2 s per claim instead of 0.2 s, measured at 1M).
        with engine.begin() as conn:
            conn.execute(text("ANALYZE task"))
