"""Engines and sessions for the two supported databases: SQLite (the default) and PostgreSQL (psycopg 3).

Transactions on SQLite behave like PostgreSQL's default READ COMMITTED for our purposes: a read followed by a
write is *not* protected against a concurrent writer on either database. Code that changes state therefore
writes compare-and-set updates (``UPDATE ... WHERE id = :id AND status = :expected``) and checks the row
count, which is atomic on both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session

from nightbatch.errors import ConfigError

__all__ = [
    "Connection",
    "Engine",
    "dialect_name",
    "insert_ignoring_conflicts",
    "make_engine",
    "normalize_url",
    "reading",
    "redact_url",
    "session_scope",
    "transaction",
]

SQLITE_BUSY_TIMEOUT_SECONDS = 30


def normalize_url(url: str) -> URL:
    """Parse ``url`` and pick our drivers: ``postgres://`` and ``postgresql://`` mean psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ConfigError(
        f"unsupported database {parsed.drivername!r} in {redact_url(url)}: "
        "use sqlite:///path/to.db or postgresql+psycopg://user@host/db"
    )


def redact_url(url: str | URL) -> str:
    """The URL with any password masked, safe for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``, set up for nightbatch's workload.

    SQLite: the parent folder of the file is created, connections wait up to 30 s for a lock, and every
    connection turns on WAL (readers never block the writer) and foreign-key enforcement.
    PostgreSQL: psycopg 3, with a liveness check on checkout (long runs outlive idle connections).
    Extra keyword arguments go to :func:`sqlalchemy.create_engine`.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file:")
        if not in_memory:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, **kwargs.pop("connect_args", {})}
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas(wal=not in_memory))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _sqlite_pragmas(*, wal: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return on_connect


def dialect_name(bind: Engine | Connection | Session) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    if isinstance(bind, Session):
        return bind.get_bind().dialect.name
    return bind.dialect.name


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back when it raises.

    Objects stay usable after the block (``expire_on_commit=False``), as plain snapshots of their rows.
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def insert_ignoring_conflicts(table: Table, dialect: str, index_elements: Sequence[str]) -> Insert:
    """``INSERT ... ON CONFLICT (index_elements) DO NOTHING`` for ``table`` on ``dialect``.

    Add ``.returning(...)`` to learn which rows were new: conflicting rows return nothing.
    """
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    raise ConfigError(f"unsupported database dialect {dialect!r}")


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for several named writes of ``db`` modules that must land together (or not at all).

    Stages that combine transitions (a reused answer and the stage tasks it sets off, say) hold this, never
    a session of their own.
    """
    with engine.begin() as conn:
        yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """One connection for several reads of ``db`` modules that should see the same moment."""
    with engine.connect() as conn:
        yield conn
