"""How a chunk of typed rows reaches the database in one statement: the shapes the ingest hot path uses.

Shared by the ledger's inserts (:mod:`nightbatch.db.ledger`) and ingest's task updates
(:mod:`nightbatch.db.ingest_writes`), so that the per-row cost is the database's own work:

- PostgreSQL: ONE JSON parameter per statement, unpacked by the server (as in nightbatch.queue.enqueue).
  executemany would pipeline one statement per row, and a statement of thousands of bound parameters
  costs psycopg more client CPU than the server spends on the JSON.
- SQLite: executemany of plain tuples, straight to the driver: the database is in process, so there is
  no round trip to save, only SQLAlchemy's per-row parameter processing to skip (values are therefore
  given as SQLAlchemy would have stored them: JSON as text, the timestamp by UTCDateTime).

Rows are typed immutable rows (NamedTuples); each statement names, per column, the row's field and its
PostgreSQL type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Connection, Dialect, TextClause, bindparam, text

from nightbatch import fastjson
from nightbatch.db.models import UTCDateTime

__all__ = ["Bulk", "Columns", "bulk_insert", "json_rows", "row_timestamp"]

# Each column: (name, the row's field, PostgreSQL type). JSON columns arrive as JSON text.
Columns = tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Bulk:
    """One statement, run for a chunk of rows: ``sql`` with ``:rows`` (PostgreSQL) or ``?`` placeholders."""

    sql: TextClause | str
    keys: tuple[str, ...] = ()  # the row fields in placeholder (SQLite) or array (PostgreSQL) order

    def run(self, conn: Connection, rows: Sequence[Any], now: datetime) -> None:
        if not rows:
            return
        if isinstance(self.sql, str):
            stamp = (_sqlite_timestamp(conn.dialect)(now),)
            values = attrgetter(*self.keys)
            conn.exec_driver_sql(self.sql, [values(row) + stamp for row in rows])
        else:
            values = attrgetter(*self.keys)
            conn.execute(self.sql, {"rows": fastjson.dumps([values(row) for row in rows]).decode("utf-8"), "now": now})


def _sqlite_timestamp(dialect: Dialect) -> Any:
    """The column type's own conversion, to the text SQLAlchemy stores (not the sqlite3 module's default)."""
    return UTCDateTime().dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)


def row_timestamp(dialect: Dialect, value: datetime | None) -> Any:
    """A timestamp as a row of these statements carries it: SQLite gets the stored text, PostgreSQL the value."""
    if value is None or dialect.name != "sqlite":
        return value  # PostgreSQL: serialized into the JSON rows as RFC 3339, read back as timestamptz
    return _sqlite_timestamp(dialect)(value)


def json_rows(columns: Columns) -> tuple[str, dict[str, str]]:
    """PostgreSQL: a FROM item unpacking ``:rows``, a JSON array of arrays, and each column's SQL expression.

    Rows travel as arrays in column order: ``attrgetter`` and orjson on tuples cost a fraction of serializing
    each row as an object, and ``jsonb`` makes each ``->>`` an indexed read rather than a re-scan of the text.
    """
    exprs = {name: f"CAST(r.e->>{i} AS {kind})" for i, (name, _, kind) in enumerate(columns)}
    return "jsonb_array_elements(CAST(:rows AS jsonb)) AS r(e)", exprs


def bulk_insert(dialect: str, table: str, columns: Columns) -> Bulk:
    names = ", ".join(name for name, _, _ in columns)
    if dialect == "sqlite":
        marks = ", ".join("?" * (len(columns) + 1))
        return Bulk(f"INSERT INTO {table} ({names}, created_at) VALUES ({marks})", tuple(k for _, k, _ in columns))
    source, exprs = json_rows(columns)
    sql = f"INSERT INTO {table} ({names}, created_at) SELECT {', '.join(exprs.values())}, :now FROM {source}"
    return Bulk(text(sql).bindparams(bindparam("now", type_=UTCDateTime())), tuple(k for _, k, _ in columns))
