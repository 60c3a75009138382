"""The command line, as a user runs it: clear one-line errors, nothing half-done."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nightbatch.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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


@pytest.fixture
def api_env(env: Path, monkeypatch: pytest.MonkeyPatch, emulator) -> Path:
    """The CLI against the emulator; Prefect variables the CLI may set are restored after the test."""
    for name in ("PREFECT_HOME", "PREFECT_LOGGING_LEVEL", "PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK",
                 "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):  # fmt: skip
        monkeypatch.setenv(name, os.environ.get(name, ""))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
    emulator.configure(time_scale=36_000)
    return env


def test_a_missing_api_key_is_one_line_before_prefect_starts(env: Path):
    result = run("submit")
    assert result.exit_code == 2
    assert result.output.startswith("error: no ANTHROPIC_API_KEY and no ANTHROPIC_BASE_URL")
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("prefect_harness")
def test_run_exits_1_for_a_night_with_problems_and_says_why(api_env: Path):
    from nightbatch.db.engine import make_engine
    from nightbatch.queue.enqueue import enqueue

    tasks = api_env / "date_extraction.jsonl"
    tasks.write_text('{"text": "Paid on 2024-03-01."}\n')
    assert run("enqueue", str(tasks)).exit_code == 0
    # A task whose template field is missing (enqueue refuses such files now; one queued before fails at send).
    engine = make_engine(os.environ["NIGHTBATCH_DATABASE_URL"])
    enqueue(engine, "date_extraction", {"note": "no text: the template needs it"})
    engine.dispose()
    result = run("run", "--poll-seconds", "0.2", "--deadline-minutes", "2")
    assert result.exit_code == 1, result.output
    assert "Failed: Problems: 1 of 2 tasks failed (50.0%, over 0.5%)." in result.output
    # A table row, or its vertical form ("what: ... value: 1") when the labels do not fit 80 columns.
    assert re.search(r"failed before sending \(invalid_task\):? │? ?(value: )?1\b", result.output), result.output
    # No raw dict in the output ({text}, a template field, may appear in a failure reason).
    assert "{'" not in result.output
    assert '{"' not in result.output
    report = run("report")
    assert "Failed tasks: 1" in report.output
    assert "invalid_task (before sending)" in report.output


@pytest.mark.usefixtures("prefect_harness")
def test_run_json_is_one_parsable_document_with_exact_money(api_env: Path):
    tasks = api_env / "date_extraction.jsonl"
    tasks.write_text('{"text": "Paid on 2024-03-01."}\n{"text": "Paid on 2024-03-02."}\n')
    run("enqueue", str(tasks))
    raw = CliRunner().invoke(app, ["run", "--poll-seconds", "0.2", "--deadline-minutes", "2", "--json"])
    assert raw.exit_code == 0, raw.output
    data = json.loads(raw.stdout)  # Prefect logs to stderr
    assert data["ok"] is True
    assert data["outcomes"] == {"succeeded": 2}
    assert Decimal(data["cost_usd"]) > 0
    report = CliRunner().invoke(app, ["report"])  # a pipe: no table may cut a figure or a model name
    assert report.exit_code == 0, report.output
    assert "…" not in report.stdout
    costs = json.loads(CliRunner().invoke(app, ["report", "--format", "json"]).stdout)["costs"]["rows"]
    for row in costs:
        assert row["model"] in report.stdout
        assert f"{row['output_tokens']:,}" in report.stdout
