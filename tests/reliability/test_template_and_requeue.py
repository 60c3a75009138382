"""Template fields checked at enqueue, failures reported by submit, and `nightbatch requeue` (issue 15, item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from nightbatch.cli import app
from nightbatch.db.models import Task
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue
from nightbatch.storage import LocalObjectStore
from nightbatch.submit.step import submit_step
from tests.fixtures.services import make_services


def _statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(s): n for s, n in conn.execute(select(Task.status, func.count()).group_by(Task.status))}


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path) -> Path:
    config = tmp_path / "nightbatch.toml"
    config.write_text('[task_types.notes]\nmodel = "claude-haiku-4-5"\nmax_tokens = 8\ntemplate = "Note: {txet}"\n')
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(config))
    return config


def test_enqueue_refuses_a_file_whose_payloads_lack_a_template_field(cli_env: Path, engine: Engine, tmp_path: Path):
    tasks = tmp_path / "notes.jsonl"
    tasks.write_text('{"text": "one"}\n{"text": "two"}\n')
    code, output = _cli("enqueue", str(tasks))
    assert code == 2, output
    assert f"{tasks}:1: task type 'notes': template field {{txet}}: the payload has no 'txet'" in output
    assert _statuses(engine) == {}  # nothing enqueued, so fixing the template and enqueueing again works
    cli_env.write_text(cli_env.read_text().replace("{txet}", "{text}"))
    code, output = _cli("enqueue", str(tasks))
    assert code == 0, output
    assert "enqueued 2 tasks" in output
    assert _statuses(engine) == {"queued": 2}


def test_submit_names_the_reason_and_requeue_brings_the_tasks_back(
    cli_env: Path, engine: Engine, emulator: EmulatorServer, tmp_path: Path
):
    # Tasks queued through the library (no template check) with a payload lacking the field.
    for i in range(3):
        enqueue(engine, "date_extraction", {"txt": f"paid on 2024-01-0{i + 1}"})
    enqueue(engine, "date_extraction", {"text": "paid on 2024-02-01"})
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    report = submit_step(services)
    assert report.failed_tasks == 3
    assert report.failure_reasons == {"invalid_task: template field {text}: the payload has no 'text'": 3}
    assert report.submitted_tasks == 1
    assert _statuses(engine) == {"failed": 3, "submitted": 1}

    code, output = _cli("requeue", "--error-type", "invalid_task", "--dry-run")
    assert (code, output) == (0, "would re-queue 3 task(s) (date_extraction: 3)")
    assert _statuses(engine) == {"failed": 3, "submitted": 1}
    assert _cli("requeue", "--task-type", "ticket_triage")[1] == "re-queued 0 task(s)"
    assert _cli("requeue", "--error-type", "bad_result")[1] == "re-queued 0 task(s)"
    assert _cli("requeue", "--error-type", "invalid_task")[1] == "re-queued 3 task(s) (date_extraction: 3)"
    assert _statuses(engine) == {"queued": 3, "submitted": 1}
    with engine.connect() as conn:
        assert set(conn.execute(select(Task.attempts).where(Task.status == "queued")).scalars()) == {0}
    assert _cli("requeue", "--error-type", "invalid_task")[1] == "re-queued 0 task(s)"  # idempotent
    code, output = _cli("requeue", "--state", "submitted")
    assert code == 2
    assert "cannot be re-queued" in output
    assert _statuses(engine) == {"queued": 3, "submitted": 1}
