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


# SQLite cannot reflect an expression index, so the drift check skips the claim-order index there (with these
# warnings); test_claim.py checks that the migrated index exists and that claims read it, on both databases.
_EXPRESSION_INDEX_UNCOMPARED = [
    "ignore:Skipped unsupported reflection of expression-based index",
    "ignore:autogenerate skipping metadata-specified expression-based index",
]


@pytest.mark.filterwarnings(*_EXPRESSION_INDEX_UNCOMPARED)
def test_upgrade_creates_exactly_the_models(empty_db_url: str) -> None:
    assert current_revision(empty_db_url) is None
    upgrade(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()
    assert _drift(empty_db_url) == []
    assert _tables(empty_db_url) == set(metadata.tables) | {"alembic_version"}


@pytest.mark.filterwarnings(*_EXPRESSION_INDEX_UNCOMPARED)
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


def test_0006_moves_the_calibration_marker_into_its_column_and_back(empty_db_url: str) -> None:
    """A calibration batch written before 0006 names its calibration in ``cache_decision``; the upgrade
    moves that id into ``batch.calibration_id`` (other batches untouched), the downgrade puts it back."""
    import json

    import sqlalchemy as sa

    from nightbatch.db.engine import make_engine
    from nightbatch.db.migrate import downgrade, upgrade

    def decision(value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value  # SQLite returns JSON as text here

    upgrade(empty_db_url, "0005")
    engine = make_engine(empty_db_url)
    batch_columns = (
        "model, status, request_count, payload_bytes, processing_count, succeeded_count, errored_count,"
        " canceled_count, expired_count, created_at, purpose, cache_decision"
    )
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO calibration (id, task_type, sample_size, models, status, created_at)"
                    " VALUES (7, 'triage', 10, '[\"claude-haiku-4-5\"]', 'running', CURRENT_TIMESTAMP)"
                )
            )
            for batch_id, purpose, cache_decision in (
                (1, "calibration", '{"calibration_id": 7}'),
                (2, "task", '{"ttl": "5m"}'),
            ):
                conn.execute(
                    sa.text(
                        f"INSERT INTO batch (id, {batch_columns}) VALUES (:id, 'claude-haiku-4-5', 'ended', 1, 10,"
                        " 0, 1, 0, 0, 0, CURRENT_TIMESTAMP, :purpose, :decision)"
                    ),
                    {"id": batch_id, "purpose": purpose, "decision": cache_decision},
                )
        upgrade(empty_db_url, "0006")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, calibration_id, cache_decision FROM batch ORDER BY id")).all()
        assert [(r[0], r[1], decision(r[2])) for r in rows] == [(1, 7, None), (2, None, {"ttl": "5m"})]
        downgrade(empty_db_url, "0005")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, cache_decision FROM batch ORDER BY id")).all()
        assert [(r[0], decision(r[1])) for r in rows] == [(1, {"calibration_id": 7}), (2, {"ttl": "5m"})]
        assert "calibration_id" not in {c["name"] for c in sa.inspect(engine).get_columns("batch")}
    finally:
        engine.dispose()
