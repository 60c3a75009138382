"""Schema migrations, driven from code: the Alembic scripts ship inside the package (``nightbatch/migrations``).

``nightbatch db upgrade`` calls :func:`upgrade` with the configured database URL; no ``alembic.ini`` is
needed. Every command calls :func:`upgrade` first, so a kill at any moment of a first upgrade must leave
the database as it was: the whole upgrade, DDL and version row, is one transaction on both databases.
PostgreSQL has transactional DDL. SQLite has it too, but Python's ``sqlite3`` driver (before 3.12's
``autocommit``) opens a transaction only before INSERT/UPDATE/DELETE, so each ``CREATE TABLE`` committed
on its own and a killed first upgrade left tables without a version, failing every later command with
``table run already exists``. The migration engine therefore takes over SQLite's transaction control
(the driver's own off, an explicit ``BEGIN IMMEDIATE``), only for migrations: the rest of nightbatch keeps
the driver's behaviour, which its lock handling is tuned for. Tables an older nightbatch's killed first
upgrade left without a version are dropped if empty (:func:`_clear_half_made`).

Revisions are numbered (``0001``, ``0002``, ...); :func:`new_revision` writes the next one by comparing the
models with a scratch database migrated to head.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, event, inspect, literal, select, text

from nightbatch.db.engine import make_engine, redact_url
from nightbatch.db.models import metadata
from nightbatch.errors import ConfigError, StateError

__all__ = ["current_revision", "downgrade", "head_revision", "new_revision", "require_current", "revisions", "upgrade"]

SCRIPT_LOCATION = "nightbatch:migrations"
log = logging.getLogger(__name__)


def _config(connection: Connection | None = None, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _migration_engine(url: str) -> Engine:
    """An engine whose transactions really enclose DDL on SQLite too (see the module docstring)."""
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we say BEGIN and COMMIT ourselves

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _clear_half_made(conn: Connection, url: str) -> None:
    """Drop the tables a killed first upgrade of an older nightbatch left without a version, if all empty.

    Such a database never worked (every command failed), so empty tables are all it can hold; a table
    with rows means something else is going on, and nothing is touched.
    """
    if MigrationContext.configure(conn).get_current_revision() is not None:
        return
    present = set(inspect(conn).get_table_names())
    ours = [t for t in reversed(metadata.sorted_tables) if t.name in present]
    if not ours:
        return
    filled = [t.name for t in ours if conn.execute(select(literal(1)).select_from(t).limit(1)).first()]
    if filled:
        raise StateError(
            f"database {redact_url(url)} has nightbatch tables with rows ({', '.join(filled)}) but no schema "
            "version: restore it from a backup, or stamp it with `alembic stamp` if you know its revision"
        )
    log.warning("database %s: dropping %d empty tables a killed first upgrade left behind", redact_url(url), len(ours))
    for table in ours:
        conn.execute(text(f'DROP TABLE "{table.name}"'))


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest), in one transaction."""
    engine = _migration_engine(url)
    try:
        with engine.begin() as conn:
            _clear_half_made(conn, url)
            command.upgrade(_config(conn), revision)
    except CommandError as exc:
        # The database is at a revision this nightbatch does not ship (a newer nightbatch migrated it, or
        # the URL names another application's database): say so instead of alembic's traceback.
        raise ConfigError(
            f"database {redact_url(url)} cannot be upgraded: {exc}. It was migrated by a newer nightbatch "
            "(upgrade nightbatch) or belongs to something else (fix NIGHTBATCH_DATABASE_URL)"
        ) from exc
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"``: drop everything nightbatch made)."""
    engine = _migration_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(_config(conn), revision)
    finally:
        engine.dispose()


def current_revision(bind: str | Engine) -> str | None:
    """The revision the database is at; ``None`` for a database nightbatch has never migrated."""
    engine = make_engine(bind) if isinstance(bind, str) else bind
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if isinstance(bind, str):
            engine.dispose()


def head_revision() -> str:
    """The newest revision this version of nightbatch ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise StateError("nightbatch ships no migrations; the installation is broken")
    return head


def revisions() -> list[tuple[str, str | None, str]]:
    """Every revision this version ships, oldest first: ``(revision, down revision, message)``."""
    script = ScriptDirectory.from_config(_config())
    out = []
    for rev in script.walk_revisions():
        down = rev.down_revision
        out.append((rev.revision, down if isinstance(down, str) or down is None else ",".join(down), rev.doc or ""))
    return list(reversed(out))


def require_current(bind: str | Engine) -> None:
    """Raise :class:`StateError` unless the database is migrated to :func:`head_revision`."""
    current = current_revision(bind)
    head = head_revision()
    if current != head:
        where = redact_url(bind) if isinstance(bind, str) else redact_url(bind.url)
        raise StateError(
            f"database {where} is at revision {current or 'none (empty)'}, this nightbatch needs {head}: "
            "run `nightbatch db upgrade`"
        )


def new_revision(message: str, url: str | None = None) -> Path:
    """Write the next numbered revision, autogenerated from the models (a developer tool).

    ``url`` must be a database at head; by default a scratch SQLite database is migrated for the
    comparison. Review the generated file: autogenerate misses renames and server defaults.
    """
    rev_id = f"{int(head_revision()) + 1:04d}"
    with tempfile.TemporaryDirectory() as scratch:
        target = url or f"sqlite:///{Path(scratch) / 'scratch.db'}"
        if url is None:
            upgrade(target)
        engine = make_engine(target)
        try:
            with engine.begin() as conn:
                script = command.revision(_config(conn), message=message, autogenerate=True, rev_id=rev_id)
        finally:
            engine.dispose()
    if script is None or isinstance(script, list):  # pragma: no cover - one head, one script
        raise StateError(f"alembic wrote no single revision for {message!r}")
    return Path(script.path)
