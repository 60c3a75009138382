"""A killed run is closed as interrupted, and the run that finished its work reports it (issue 15, item 7).

The killed run is a real child process: it starts a run, sends a batch and SIGKILLs itself.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from nightbatch.cli import app
from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Run
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue
from nightbatch.report.query import resolve_selection
from nightbatch.report.summary import summarize
from nightbatch.runs import close_interrupted_runs, start_run
from nightbatch.storage import LocalObjectStore
from nightbatch.submit.step import submit_step
from tests.fixtures.services import make_services

ROOT = Path(__file__).resolve().parents[2]

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from nightbatch.db.engine import make_engine
    from nightbatch.runs import start_run
    from nightbatch.storage import LocalObjectStore
    from nightbatch.submit.step import submit_step
    from tests.fixtures.services import make_services

    url, store, base_url = sys.argv[1:4]
    engine = make_engine(url)
    services = make_services(engine, LocalObjectStore(store), base_url, worker="doomed")
    run_id = start_run(engine, "nightly", {})
    assert submit_step(services, run_id=run_id).submitted_tasks == 4
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _enqueue(engine: Engine, first: int, n: int) -> None:
    for i in range(first, first + n):
        enqueue(engine, "date_extraction", {"text": f"Paid on 2024-03-{i + 1:02d}."})


def _runs(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(int(i), str(s)) for i, s in conn.execute(select(Run.id, Run.status).order_by(Run.id))]


def test_a_killed_run_is_closed_and_the_next_run_reports_its_work(
    engine: Engine, db_url: str, emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _enqueue(engine, 0, 4)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, db_url, str(tmp_path / "store"), emulator.base_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert _runs(engine) == [(1, "running")]

    # The next run: closes the dead one first (its process is gone on this host), then does its own work.
    _enqueue(engine, 4, 4)
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    closed = close_interrupted_runs(engine, stale_after=timedelta(hours=1))
    assert [c.run_id for c in closed] == [1]
    assert "process" in closed[0].reason
    assert "is gone" in closed[0].reason
    run_id = start_run(engine, "nightly", {})
    assert submit_step(services, run_id=run_id).submitted_tasks == 4
    emulator.advance(3600)
    collect_step(services)
    assert _runs(engine) == [(1, "interrupted"), (2, "running")]

    # The default report selection and the run's summary cover both runs' work, and say so.
    selection = resolve_selection(engine)
    assert (selection.run_id, selection.interrupted_runs) == (2, (1,))
    assert "with interrupted run(s) 1, whose work it finished" in selection.label
    assert summarize(engine, services.prices, run_id=2).outcomes == {"succeeded": 8}
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(tmp_path / "absent.toml"))
    result = CliRunner().invoke(app, ["report", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "with interrupted run(s) 1" in result.output


def test_collect_closes_dead_runs_and_leaves_live_ones(engine: Engine, emulator: EmulatorServer, tmp_path: Path):
    now = datetime.now(UTC)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    with engine.begin() as conn:
        conn.execute(
            Run.__table__.insert(),  # type: ignore[attr-defined]
            [
                # here, process gone
                {"kind": "nightly", "parameters": {}, "status": "running", "started_at": now,
                 "hostname": __import__("socket").gethostname(), "pid": dead_pid, "heartbeat_at": now},
                # elsewhere, silent for an hour
                {"kind": "nightly", "parameters": {}, "status": "running", "started_at": now - timedelta(hours=2),
                 "hostname": "elsewhere", "pid": 1, "heartbeat_at": now - timedelta(hours=1)},
                # elsewhere, beating
                {"kind": "nightly", "parameters": {}, "status": "running", "started_at": now - timedelta(hours=2),
                 "hostname": "elsewhere", "pid": 1, "heartbeat_at": now - timedelta(seconds=10)},
            ],
        )  # fmt: skip
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    report = collect_step(services)
    assert len(report.closed_runs) == 2
    assert _runs(engine) == [(1, "interrupted"), (2, "interrupted"), (3, "running")]
    assert collect_step(services).closed_runs == []  # once
