"""The terminal stays readable: whole figures at 80 columns and in a pipe, --json everywhere, new commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from nightbatch.cli import app
from nightbatch.cli.tables import duration_text, fits
from nightbatch.db.models import Batch, BatchStatus, Task
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue
from nightbatch.submit.step import submit_step
from tests.fixtures.services import make_services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path, emulator: EmulatorServer) -> str:
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(EXAMPLES / "nightbatch.toml"))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    return db_url


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


def shell(*args: str, columns: int = 80) -> str:
    """The command in a child process with stdout a pipe and COLUMNS set, as `nightbatch ... | less` runs it."""
    env = {**os.environ, "COLUMNS": str(columns)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("nightbatch")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def submitted(engine: Engine, tmp_path: Path, emulator: EmulatorServer, n: int = 3) -> list[int]:
    from nightbatch.storage import LocalObjectStore

    for i in range(n):
        enqueue(engine, "date_extraction", {"text": f"Paid on 2024-05-0{i + 1}."})
    services = make_services(engine, LocalObjectStore(tmp_path / "out"), emulator.base_url)
    report = submit_step(services)
    return [b.batch_id for b in report.batches]


def test_a_table_that_does_not_fit_drops_to_one_block_per_row():
    header = ["task type", "model", "cost"]
    assert fits(header, [["ticket_triage", "claude-haiku-4-5", "$1,234.56"]], 80)
    assert not fits(header, [["ticket_triage", "claude-haiku-4-5-20251001" * 3, "$1,234.56"]], 80)
    assert duration_text(59) == "59s"
    assert duration_text(3_725) == "1h 02m"
    assert duration_text(-90) == "-1m 30s"


@pytest.mark.parametrize("columns", [80, 200])
def test_estimate_shows_every_figure_and_model_whole_at_80_columns_and_in_a_pipe(cli_env: str, columns: int):
    path = str(EXAMPLES / "tasks" / "policy_judgement.jsonl")
    data = json.loads(shell("estimate", path, "--offline", "--json", columns=columns))
    text = shell("estimate", path, "--offline", columns=columns)
    assert "…" not in text
    for group in data["groups"]:
        assert group["model"] in text
        assert f"{group['tasks']:,}" in text
        assert f"{group['prefix_tokens']:,}" in text
    # Table lines fit; prose lines (the title with its path, the one-line total) are left to the terminal.
    table_lines = [line for line in text.splitlines() if path not in line and "tasks: expected" not in line]
    assert all(len(line) <= columns for line in table_lines), text


def test_status_counts_tasks_by_type_and_state_and_ages_open_batches(
    cli_env: str, engine: Engine, tmp_path: Path, emulator: EmulatorServer
):
    submitted(engine, tmp_path, emulator)
    enqueue(engine, "ticket_triage", {"text": "waiting"})
    code, out = invoke("status", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["tasks"] == {"date_extraction": {"submitted": 3}, "ticket_triage": {"queued": 1}}
    (batch,) = data["open_batches"]
    assert batch["task_type"] == "date_extraction"
    assert batch["requests"] == 3
    assert batch["age_seconds"] >= 0
    assert batch["live"] is None
    emulator.advance(3600)
    live = json.loads(invoke("status", "--json", "--live")[1])
    assert live["open_batches"][0]["live"]["succeeded"] == 3  # the API's count, before any collect
    code, text = invoke("status")
    assert code == 0
    assert "date_extraction" in text
    assert "…" not in text


def test_tasks_lists_by_state_and_shows_one_with_attempts_and_costs(
    cli_env: str, engine: Engine, tmp_path: Path, emulator: EmulatorServer
):
    submitted(engine, tmp_path, emulator, n=2)
    enqueue(engine, "date_extraction", {"note": "never sent"})
    code, out = invoke("tasks", "--state", "submitted", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [t["status"] for t in listed] == ["submitted", "submitted"]
    code, text = invoke("tasks", "show", str(listed[0]["id"]))
    assert code == 0
    assert "date_extraction" in text
    assert invoke("tasks", "show", "999999")[0] == 2


def test_cancel_records_who_and_why_on_each_batch_of_a_run(
    cli_env: str, engine: Engine, tmp_path: Path, emulator: EmulatorServer
):
    (batch_id,) = submitted(engine, tmp_path, emulator)
    code, out = invoke("cancel", str(batch_id), "--reason", "wrong prompt", "--json")
    assert code == 0, out
    assert json.loads(out)["canceled"] == [batch_id]
    with engine.connect() as conn:
        status, error = conn.execute(select(Batch.status, Batch.error).where(Batch.id == batch_id)).one()
        flags = conn.execute(select(Task.user_canceled).where(Task.batch_id == batch_id)).scalars().all()
    assert status == BatchStatus.CANCELING
    assert re.search(r"canceled by .+ at \d{4}-\d\d-\d\d \d\d:\d\d UTC: wrong prompt", error)
    assert all(flags)
    again = CliRunner().invoke(app, ["cancel", str(batch_id)])
    assert again.exit_code == 2  # nothing in progress any more
    assert "no batch in progress" in again.output


def test_version_and_db_history(cli_env: str):
    code, out = invoke("--version")
    assert code == 0
    assert re.fullmatch(r"nightbatch \d+\.\d+\.\d+.*\n", out)
    code, out = invoke("db", "history")
    assert code == 0
    assert "0001" in out
    assert "<- database" in out


def test_prefect_gets_sane_defaults_only_where_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from nightbatch.cli.flow_runs import prepare_prefect
    from nightbatch.config import Settings

    for name in ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED", "PREFECT_LOGGING_LEVEL", "DO_NOT_TRACK",
                 "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):  # fmt: skip
        monkeypatch.setenv(name, "recorded")  # so that monkeypatch restores (or removes) it afterwards
        monkeypatch.delenv(name)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")  # the user's choice stays
    prepare_prefect(Settings(home=tmp_path / "nb"))
    assert os.environ["PREFECT_HOME"] == str((tmp_path / "nb" / "prefect").resolve())
    assert (tmp_path / "nb" / "prefect").is_dir()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "90"
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"


def test_progress_on_a_terminal_shows_counts_rate_and_eta_and_nothing_in_a_pipe():
    import io
    import time

    from rich.console import Console

    from nightbatch.cli.progress import watch

    ticks = iter(range(0, 100_000, 2_500))

    def probe() -> tuple[int, int | None, str]:
        return next(ticks, 97_500), 100_000, "submitting (3 batches)"

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    with watch(terminal, probe, every=0.05):
        time.sleep(0.6)
    drawn = screen.getvalue()
    assert "submitting (3 batches)" in drawn
    assert re.search(r"\d{1,3},\d{3}/100,000", drawn)  # counts with thousands separators
    assert re.search(r"[\d,.]+/s", drawn)  # a rate
    assert "ETA" in drawn
    pipe = io.StringIO()
    with watch(Console(file=pipe, width=100), probe, every=0.05):
        time.sleep(0.2)
    assert pipe.getvalue() == ""
