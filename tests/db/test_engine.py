"""Engines, URLs and sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlmodel import select as sqlmodel_select

from nightbatch.db import Run, dialect_name, insert_ignoring_conflicts, make_engine, metadata, session_scope
from nightbatch.db.engine import normalize_url, redact_url
from nightbatch.errors import ConfigError


def test_sqlite_engine_creates_its_folder_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "nb.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
        assert path.exists()
    finally:
        engine.dispose()


def test_in_memory_sqlite_works() -> None:
    engine = make_engine("sqlite://")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_urls_use_psycopg3(scheme: str) -> None:
    assert normalize_url(f"{scheme}://u:pw@h:5/db").drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        make_engine(url)


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"


def test_dialect_name(engine: Engine, db_backend: str) -> None:
    assert dialect_name(engine) == db_backend


def test_session_scope_commits_or_rolls_back(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Run(kind="submit"))

    def fail_inside() -> None:
        with session_scope(engine) as session:
            session.add(Run(kind="collect"))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_inside()
    with session_scope(engine) as session:
        assert session.exec(sqlmodel_select(Run.kind)).all() == ["submit"]


def test_insert_ignoring_conflicts(engine: Engine) -> None:
    run = metadata.tables["run"]
    stmt = insert_ignoring_conflicts(run, dialect_name(engine), ["id"]).returning(run.c.id)
    row = {"id": 1, "kind": "k", "parameters": {}, "status": "running"}
    with engine.begin() as conn:
        assert conn.execute(stmt, [row]).scalars().all() == [1]
        assert conn.execute(stmt, [row]).scalars().all() == []
        assert conn.execute(select(func.count()).select_from(run)).scalar() == 1
    with pytest.raises(ConfigError):
        insert_ignoring_conflicts(run, "oracle", ["id"])
