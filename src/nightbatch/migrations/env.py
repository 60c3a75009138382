"""Alembic environment for nightbatch. Configured in code by :mod:`nightbatch.db.migrate` (no alembic.ini).

:func:`nightbatch.db.migrate.upgrade` hands over an open connection in ``config.attributes["connection"]``;
without one, an engine is made from the ``sqlalchemy.url`` option. Offline mode (``--sql``) prints the DDL.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, String

from nightbatch.db.engine import make_engine
from nightbatch.db.models import StrEnumType, UTCDateTime, metadata

config = context.config


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write our column types as plain SQLAlchemy types, so revisions never import nightbatch code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, StrEnumType):
        return f"sa.String(length={cast(String, obj.impl_instance).length})"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table, PostgreSQL ALTERs
        render_item=render_item,
        compare_type=True,
        # One transaction for the whole upgrade, version row included (nightbatch.db.migrate makes SQLite's
        # DDL transactional too): a killed upgrade leaves the database as it was.
        transactional_ddl=True,
        transaction_per_migration=False,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("nightbatch migrations need a connection or the sqlalchemy.url option")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
