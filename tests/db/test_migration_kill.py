"""A `db upgrade` killed part-way leaves the database as it was, and the next upgrade works (issue 15, item 3).

The kill is real: a child process runs the upgrade and SIGKILLs itself just before its N-th CREATE TABLE,
so no rollback, no `finally`, nothing of Python's runs after it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import inspect

from nightbatch.db import current_revision, head_revision, make_engine, upgrade

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import Engine, event
    from nightbatch.db.migrate import upgrade

    created = 0

    def before(conn, cursor, statement, parameters, context, executemany):
        global created
        if statement.lstrip().upper().startswith("CREATE TABLE") and "alembic_version" not in statement:
            created += 1
            if created == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "before_cursor_execute", before)
    upgrade(sys.argv[1])
    """
)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("kill_at", [3, 7])
def test_a_killed_first_upgrade_can_be_run_again(empty_db_url: str, kill_at: int) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, empty_db_url, str(kill_at)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    # Nothing half-made: no nightbatch table and no version (alembic's own table may exist, empty).
    assert _tables(empty_db_url) <= {"alembic_version"}
    assert current_revision(empty_db_url) is None
    upgrade(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()


def test_empty_tables_without_a_version_are_cleared_and_upgraded(empty_db_url: str) -> None:
    """What a killed first upgrade of an older nightbatch left on SQLite: tables, no version."""
    from nightbatch.db.models import metadata

    engine = make_engine(empty_db_url)
    for table in ("run", "calibration", "batch"):  # batch refers to both
        metadata.tables[table].create(engine)
    engine.dispose()
    upgrade(empty_db_url)
    assert current_revision(empty_db_url) == head_revision()


def test_tables_with_rows_but_no_version_are_left_alone(empty_db_url: str) -> None:
    from sqlalchemy import text

    from nightbatch.db.models import metadata
    from nightbatch.errors import StateError

    engine = make_engine(empty_db_url)
    metadata.tables["run"].create(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO run (kind, parameters, status, started_at) VALUES ('x', '{}', 'running', "
                          "CURRENT_TIMESTAMP)"))  # fmt: skip
    engine.dispose()
    with pytest.raises(StateError, match=r"tables with rows \(run\) but no schema version"):
        upgrade(empty_db_url)
    assert "run" in _tables(empty_db_url)
