"""Database trouble is one line naming the URL (password masked) and what to do, exit 2 or 1 (item 8)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from nightbatch.cli import app
from nightbatch.db import make_engine, upgrade

PG = os.environ.get("NIGHTBATCH_TEST_POSTGRES_URL")


def _run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(tmp_path / "absent.toml"))
    result = CliRunner().invoke(app, list(args or ["status"]))
    return result.exit_code, result.output


def _one_clean_line(output: str) -> str:
    assert "Traceback" not in output
    assert "s3cret" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    return " ".join(" ".join(lines).split())


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    url = "postgresql+psycopg://nightbatch:s3cret@127.0.0.1:1/nightbatch?connect_timeout=2"
    code, output = _run(monkeypatch, tmp_path, url)
    line = _one_clean_line(output)
    assert code == 1, output
    assert "database postgresql+psycopg://nightbatch:***@127.0.0.1:1/nightbatch" in line
    assert "unreachable" in line
    assert "check that the server runs" in line


@pytest.mark.skipif(not PG, reason="needs NIGHTBATCH_TEST_POSTGRES_URL")
def test_missing_postgres_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from sqlalchemy.engine import make_url

    assert PG is not None
    url = make_url(PG).set(password="s3cret", database="nightbatch_no_such_db").render_as_string(False)
    code, output = _run(monkeypatch, tmp_path, url)
    line = _one_clean_line(output)
    assert code == 2, output
    assert "nightbatch_no_such_db does not exist" in line
    assert "fix NIGHTBATCH_DATABASE_URL" in line


def test_unopenable_sqlite_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    code, output = _run(monkeypatch, tmp_path, f"sqlite:///{tmp_path}")  # a folder, not a file
    line = _one_clean_line(output)
    assert code == 2, output
    assert f"cannot open the SQLite database sqlite:///{tmp_path}" in line


def test_a_database_at_an_unknown_revision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    code, output = _run(monkeypatch, tmp_path, url, "enqueue", str(tmp_path / "none.jsonl"))
    line = _one_clean_line(output)
    assert code == 2, output
    assert f"database {url} cannot be upgraded" in line
    assert "0099" in line
    assert "newer nightbatch" in line
