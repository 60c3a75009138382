"""The command line, as a user runs it: clear one-line errors, nothing half-done."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nightbatch.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(EXAMPLES / "nightbatch.toml"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    return tmp_path


class Ran:
    """A command's exit code and its output with line wrapping undone (rich wraps to the terminal width)."""

    def __init__(self, *args: str) -> None:
        result = CliRunner().invoke(app, list(args))
        self.exit_code = result.exit_code
        self.output = " ".join(result.output.split()).replace(" /", "/")


def run(*args: str) -> Ran:
    return Ran(*args)


def test_db_upgrade_then_current(env: Path):
    first = run("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert "empty ->" in first.output
    current = run("db", "current")
    assert current.exit_code == 0
    # At the newest revision, whatever its number (several branches add migrations; the lead re-chains them).
    assert re.search(r"at (\w+), latest \1\b", current.output), current.output


def test_enqueue_names_the_bad_line_and_enqueues_nothing(env: Path):
    tasks = env / "tickets.jsonl"
    tasks.write_text('{"text": "one"}\n{"text": "two"}\n{not json}\n')
    result = run("enqueue", str(tasks), "--task-type", "ticket_triage")
    assert result.exit_code == 2
    assert f"{tasks}:3:" in result.output
    status = run("status")
    assert "queued" not in status.output  # nothing from the file


def test_enqueue_twice_is_a_no_op_that_says_so(env: Path):
    tasks = env / "ticket_triage.jsonl"
    tasks.write_text('{"text": "one"}\n{"text": "two"}\n')
    assert "enqueued 2 tasks" in run("enqueue", str(tasks)).output  # task type from the file name
    again = run("enqueue", str(tasks))
    assert "enqueued 0 tasks" in again.output
    assert "2 already queued" in again.output
    assert "queued" in run("status").output


def test_estimate_prices_a_file_offline(env: Path):
    result = run("estimate", str(EXAMPLES / "tasks" / "date_extraction.jsonl"), "--offline")
    assert result.exit_code == 0, result.output
    assert "800 tasks" in result.output


def test_a_bad_task_config_is_one_clear_line(env: Path, monkeypatch: pytest.MonkeyPatch):
    broken = env / "broken.toml"
    broken.write_text('[task_types.x]\nmodel = "claude-haiku-4-5"\nmax_tokens = 0\n')
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(broken))
    result = run("estimate", str(EXAMPLES / "tasks" / "date_extraction.jsonl"), "--offline")
    assert result.exit_code == 2
    assert "broken.toml: task type 'x': field `max_tokens`" in result.output
    assert "Traceback" not in result.output
