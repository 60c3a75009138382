"""The nightly flow at its deadline, for real: a batch the provider sits on is canceled at the margin and its
tasks are answered real-time before the run ends (``on_deadline = "realtime"``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from flows.nightly import nightly
from flows.params import NightlyParams
from nightbatch.db.engine import make_engine
from nightbatch.db.models import Batch, Task, TaskStatus, UsageRecord
from nightbatch.emulator import EmulatorServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TASKS = 12


@pytest.fixture
def rescue_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path, emulator: EmulatorServer) -> str:
    config = tmp_path / "config"
    shutil.copytree(EXAMPLES / "prompts", config / "prompts")
    text = (EXAMPLES / "nightbatch.toml").read_text(encoding="utf-8")
    text = text.replace(
        "[task_types.ticket_triage]\n",
        '[task_types.ticket_triage]\non_deadline = "realtime"\ncache = { mode = "off" }\n',
    )
    (config / "nightbatch.toml").write_text(text, encoding="utf-8")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("NIGHTBATCH_ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(config / "nightbatch.toml"))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
    # Real time, and every batch waits an hour before it starts: the provider sits on it past the deadline.
    slow = dict.fromkeys(("claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5"), (3600.0, 3600.0))
    emulator.configure(time_scale=1, model_batch_delay_seconds=slow)
    return db_url


@pytest.mark.usefixtures("prefect_harness")
def test_the_nightly_flow_rescues_a_stuck_batch_at_its_deadline(rescue_env: str, tmp_path: Path):
    source = tmp_path / "ticket_triage.jsonl"
    lines = (EXAMPLES / "tasks" / "ticket_triage.jsonl").read_text().splitlines()[:TASKS]
    source.write_text("\n".join(lines) + "\n")
    # 0.4 minutes: the margin is a quarter of it (6 s), so the deadline step acts 18 s in.
    result = nightly(NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=0.4, wait=True))
    assert result["outcomes"] == {"succeeded": TASKS}
    engine = make_engine(rescue_env)
    with Session(engine) as session:
        tasks = session.exec(select(Task)).scalars().all()
        rows = session.exec(select(UsageRecord)).scalars().all()
        batches = session.exec(select(Batch)).scalars().all()
    engine.dispose()
    assert {t.status for t in tasks} == {TaskStatus.SUCCEEDED}
    fallback = [r for r in rows if str(r.purpose) == "fallback"]
    assert sorted(r.task_id for r in fallback) == sorted(t.id for t in tasks)
    assert {str(r.service_tier) for r in fallback} == {"standard"}
    assert all((b.error or "").startswith("deadline: canceled") for b in batches if b.purpose == "task")
