"""Migrations: from empty to the models with no drift, and back down to nothing."""

from __future__ import annotations

from importlib import resources

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from nightbatch.db import current_revision, downgrade, head_revision, make_engine, metadata, require_current, upgrade
from nightbatch.errors import StateError


def _drift(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_exactly_the_models(empty_db_url: str) -> None:
    assert current_revision(empty_db_url) is None
    upgrade(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()
    assert _drift(empty_db_url) == []
    assert _tables(empty_db_url) == set(metadata.tables) | {"alembic_version"}


def test_downgrade_to_base_then_upgrade_again(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    downgrade(empty_db_url, "base")
    assert current_revision(empty_db_url) is None
    assert _tables(empty_db_url) == {"alembic_version"}
    upgrade(empty_db_url)
    assert _drift(empty_db_url) == []
    upgrade(empty_db_url)  # already at head: a no-op


def test_require_current(empty_db_url: str) -> None:
    with pytest.raises(StateError, match=r"none \(empty\).*nightbatch db upgrade"):
        require_current(empty_db_url)
    upgrade(empty_db_url)
    require_current(empty_db_url)


def test_migrations_ship_inside_the_package() -> None:
    folder = resources.files("nightbatch") / "migrations"
    assert (folder / "env.py").is_file()
    assert (folder / "versions" / "0001_initial.py").is_file()


def test_0002_keeps_existing_batches_as_routine_ones(empty_db_url: str) -> None:
    """A database created by 0.1's first schema upgrades in place: old batches become purpose ``task``."""
    import sqlalchemy as sa

    from nightbatch.db.engine import make_engine
    from nightbatch.db.migrate import upgrade

    upgrade(empty_db_url, "0001")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO batch (model, status, request_count, payload_bytes, processing_count, succeeded_count,"
                    " errored_count, canceled_count, expired_count, created_at)"
                    " VALUES ('claude-haiku-4-5', 'ended', 1, 10, 0, 1, 0, 0, 0, CURRENT_TIMESTAMP)"
                )
            )
        upgrade(empty_db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT purpose FROM batch")).scalar_one() == "task"
    finally:
        engine.dispose()
