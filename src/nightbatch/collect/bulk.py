"""Writing one chunk of ingest rows in bulk: task updates, ledger rows and attempt rows.

Split from :mod:`nightbatch.collect.ingest` because how rows reach the database is its own concern (and its
hot path): see the comment below for why each database gets a different statement shape.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, TextClause, bindparam, text

from nightbatch import fastjson
from nightbatch.db.models import TaskStatus, UTCDateTime

__all__ = ["ChunkWriter", "Statements", "execute_rows", "row_timestamp", "update_tasks"]

# How a chunk's rows reach the database, so that the per-row cost is the database's own work:
# - PostgreSQL: ONE JSON parameter per statement, unpacked by the server (as in nightbatch.queue.enqueue).
#   executemany would pipeline one statement per row, and a statement of thousands of bound parameters
#   costs psycopg more client CPU than the server spends on the JSON.
# - SQLite: executemany of plain tuples, straight to the driver: the database is in process, so there is
#   no round trip to save, only SQLAlchemy's per-row parameter processing to skip (values are therefore
#   given as SQLAlchemy would have stored them: JSON as text, the timestamp by UTCDateTime).
# Each column: (name, key in the row dict, PostgreSQL type). JSON columns arrive as JSON text (see
# _inline); every row's timestamp is the one ``now`` of the ingest.
_USAGE_COLUMNS = tuple((c, c, t) for c, t in (
    ("task_id", "bigint"), ("batch_id", "bigint"), ("run_id", "bigint"), ("model", "text"),
    ("service_tier", "text"), ("input_tokens", "integer"), ("output_tokens", "integer"),
    ("cache_write_5m_tokens", "integer"), ("cache_write_1h_tokens", "integer"), ("cache_read_tokens", "integer"),
    ("price_version", "text"), ("cost_pusd", "bigint"), ("purpose", "text"), ("thinking_tokens", "integer"),
    ("inference_geo", "text"), ("billed_at", "timestamptz"),
))  # fmt: skip
_ATTEMPT_COLUMNS = tuple((c, c, t) for c, t in (
    ("task_id", "bigint"), ("task_type", "text"), ("attempt", "integer"), ("model", "text"), ("purpose", "text"),
    ("batch_id", "bigint"), ("custom_id", "text"), ("calibration_id", "bigint"), ("result_type", "text"),
    ("check_passed", "boolean"), ("check_reason", "text"), ("output", "json"),
))  # fmt: skip
_UPDATE_COLUMNS = (
    ("status", "b_status", "text"), ("attempts", "b_attempts", "integer"), ("error_type", "b_error_type", "text"),
    ("error_message", "b_error_message", "text"), ("output_uri", "b_output_uri", "text"),
    ("output_line", "b_output_line", "integer"), ("output_inline", "b_output_inline", "json"),
    ("batch_id", "b_new_batch", "bigint"), ("custom_id", "b_new_custom_id", "text"), ("route_model", "b_route", "text"),
)  # fmt: skip
_UPDATE_KEYS = (("id", "b_id", "bigint"), ("batch", "b_batch", "bigint"))
Columns = tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class _Bulk:
    """One statement, run for a chunk of rows: ``sql`` with ``:rows`` (PostgreSQL) or ``?`` placeholders."""

    sql: TextClause | str
    keys: tuple[str, ...] = ()  # SQLite: the row keys in placeholder order; the timestamp comes last

    def run(self, conn: Connection, rows: list[dict[str, Any]], now: datetime) -> None:
        if not rows:
            return
        if isinstance(self.sql, str):
            stamp = (_sqlite_timestamp(conn.dialect)(now),)
            values = itemgetter(*self.keys)
            conn.exec_driver_sql(self.sql, [values(row) + stamp for row in rows])
        else:
            conn.execute(self.sql, {"rows": fastjson.dumps(rows).decode("utf-8"), "now": now})


def _sqlite_timestamp(dialect: Dialect) -> Any:
    """The column type's own conversion, to the text SQLAlchemy stores (not the sqlite3 module's default)."""
    return UTCDateTime().dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)


def row_timestamp(dialect: Dialect, value: datetime | None) -> Any:
    """A timestamp as a row of these statements carries it: SQLite gets the stored text, PostgreSQL the value."""
    if value is None or dialect.name != "sqlite":
        return value  # PostgreSQL: serialized into the JSON rows as RFC 3339, read back as timestamptz
    return _sqlite_timestamp(dialect)(value)


def _json_rows(columns: Columns) -> tuple[str, dict[str, str]]:
    """PostgreSQL: a FROM item unpacking the ``:rows`` JSON array, and each column's SQL expression from it."""
    declared = ", ".join(f"{key} {'text' if kind == 'json' else kind}" for _, key, kind in columns)
    exprs = {name: f"CAST(r.{key} AS json)" if kind == "json" else f"r.{key}" for name, key, kind in columns}
    return f"json_to_recordset(CAST(:rows AS json)) AS r({declared})", exprs


def _bulk_insert(dialect: str, table: str, columns: Columns) -> _Bulk:
    names = ", ".join(name for name, _, _ in columns)
    if dialect == "sqlite":
        marks = ", ".join("?" * (len(columns) + 1))
        return _Bulk(f"INSERT INTO {table} ({names}, created_at) VALUES ({marks})", tuple(k for _, k, _ in columns))
    source, exprs = _json_rows(columns)
    sql = f"INSERT INTO {table} ({names}, created_at) SELECT {', '.join(exprs.values())}, :now FROM {source}"
    return _Bulk(text(sql).bindparams(bindparam("now", type_=UTCDateTime())))


def _bulk_update(dialect: str, *, leaving: bool) -> _Bulk:
    """Each row's decision, guarded by ``status = submitted AND batch_id = <this batch>``.

    Only for tasks ``leaving`` the batch (requeued) are ``batch_id`` and ``custom_id`` set: the others keep
    theirs, and not naming them spares SQLite rewriting three index entries per task.
    """
    changed = [(name, key) for name, key, _ in _UPDATE_COLUMNS if leaving or name not in ("batch_id", "custom_id")]
    submitted = TaskStatus.SUBMITTED.value
    if dialect == "sqlite":  # values: the changed columns', the id, the batch, then the timestamp
        n = len(changed)
        sets = ", ".join(f"{name} = ?{i}" for i, (name, _) in enumerate(changed, start=1))
        guard = f"id = ?{n + 1} AND batch_id = ?{n + 2} AND status = '{submitted}'"
        sql = f"UPDATE task SET {sets}, updated_at = ?{n + 3} WHERE {guard}"
        return _Bulk(sql, (*(key for _, key in changed), "b_id", "b_batch"))
    source, exprs = _json_rows(_UPDATE_COLUMNS + _UPDATE_KEYS)
    sets = ", ".join(f"{name} = {exprs[name]}" for name, _ in changed)
    # Each row must find its task by id. On the stale statistics of a freshly submitted batch, PostgreSQL would
    # rather walk every submitted task (by the status index) once per chunk: "+ 0" and "|| ''" keep the
    # guards from being served by an index.
    sql = (
        f"UPDATE task SET {sets}, updated_at = :now FROM {source} WHERE task.id = {exprs['id']}"
        f" AND task.batch_id + 0 = {exprs['batch']} AND task.status || '' = '{submitted}'"
    )
    return _Bulk(text(sql).bindparams(bindparam("now", type_=UTCDateTime())))


@dataclass(frozen=True)
class Statements:
    usage: _Bulk
    attempts: _Bulk
    staying: _Bulk
    leaving: _Bulk

    @classmethod
    def of(cls, dialect: Dialect) -> Statements:
        return cls(
            _bulk_insert(dialect.name, "usage_record", _USAGE_COLUMNS),
            _bulk_insert(dialect.name, "task_attempt", _ATTEMPT_COLUMNS),
            _bulk_update(dialect.name, leaving=False),
            _bulk_update(dialect.name, leaving=True),
        )


def execute_rows(conn: Connection, statement: _Bulk, rows: list[dict[str, Any]], now: datetime) -> None:
    statement.run(conn, rows, now)


def update_tasks(conn: Connection, statements: Statements, rows: list[dict[str, Any]], now: datetime) -> None:
    # A task that stays was found by this batch's id and its custom_id: the row repeats both unchanged.
    leaving = [row for row in rows if row["b_new_batch"] is None]
    execute_rows(conn, statements.staying, [row for row in rows if row["b_new_batch"] is not None], now)
    execute_rows(conn, statements.leaving, leaving, now)


_BY_TASK, _BY_ID = itemgetter("task_id"), itemgetter("b_id")


class ChunkWriter:
    """Writes each chunk's rows; on PostgreSQL from a thread of its own, while the next chunk is decided.

    The server spends longer on a chunk's three statements than this process spends deciding a chunk, and
    the driver waits for it with the interpreter lock released: in a thread, the two overlap. Only one
    write is ever in flight and the caller waits for it (:meth:`wait`) before it uses the connection
    again, so the connection is never used by two threads at once. SQLite runs in this process, and its
    statements hold the lock between rows: there the writes run inline, where they cost least.
    """

    def __init__(self, conn: Connection, now: datetime) -> None:
        self.conn, self.now = conn, now
        self.statements = Statements.of(conn.dialect)
        overlap = conn.dialect.name == "postgresql"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="nightbatch-ingest-writes") if overlap else None
        self._pending: Future[None] | None = None

    def submit(
        self, usage: list[dict[str, Any]], attempts: list[dict[str, Any]], updates: list[dict[str, Any]]
    ) -> None:
        """Write one chunk's rows (after the previous chunk's); returns before they are written on PostgreSQL."""
        self.wait()
        if self._pool is None:
            self._write(usage, attempts, updates)
        else:
            self._pending = self._pool.submit(self._write, usage, attempts, updates)

    def _write(
        self, usage: list[dict[str, Any]], attempts: list[dict[str, Any]], updates: list[dict[str, Any]]
    ) -> None:
        # In task order, not the provider's: neighbouring rows then share index and table pages (measured on
        # PostgreSQL: the task updates of a chunk of 2,000 in 47 ms instead of 53 ms).
        usage.sort(key=_BY_TASK)
        attempts.sort(key=_BY_TASK)
        updates.sort(key=_BY_ID)
        execute_rows(self.conn, self.statements.usage, usage, self.now)
        execute_rows(self.conn, self.statements.attempts, attempts, self.now)
        update_tasks(self.conn, self.statements, updates, self.now)

    def wait(self) -> None:
        """Until the write in flight is done; raises what it raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Wait for the write in flight (whatever it raises is left to :meth:`wait`'s callers) and stop the thread."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()  # waits; an error here is already being handled by the caller, or was raised
        if self._pool is not None:
            self._pool.shutdown(wait=True)
