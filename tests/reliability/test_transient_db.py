"""A PostgreSQL restart mid-run is ridden out at the step boundary; a real SQL error is not retried (item 8)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from nightbatch.db import make_engine
from nightbatch.db.transient import is_transient, retry_transient


def _restart(db_url: str) -> None:
    """What clients see of a server restart: every connection to the database is cut."""
    admin = make_engine(db_url)
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    admin.dispose()


def test_a_restart_mid_step_is_retried(engine: Engine, db_url: str, db_backend: str):
    if db_backend != "postgresql":
        pytest.skip("a server restart is a PostgreSQL matter")
    calls = 0

    def step() -> int:
        nonlocal calls
        calls += 1
        with engine.connect() as conn:
            conn.execute(select(1))
            if calls == 1:
                _restart(db_url)
                conn.execute(select(1))  # the connection is gone
        return calls

    with pytest.raises(OperationalError) as lost:
        step()  # without the retry: the step dies
    assert is_transient(lost.value)
    calls = 0
    assert retry_transient(step, what="test step", first_delay=0.01) == 2


def test_a_bad_statement_is_not_retried(engine: Engine):
    calls = 0

    def step() -> None:
        nonlocal calls
        calls += 1
        with engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises((OperationalError, ProgrammingError)):
        retry_transient(step, what="test step", first_delay=0.01)
    assert calls == 1
