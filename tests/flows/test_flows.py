"""The Prefect flows, run for real against the test harness, the emulator and the test database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flows.collect import collect
from flows.nightly import nightly
from flows.params import CollectParams, NightlyParams, SubmitParams
from flows.submit import submit
from nightbatch.db.engine import make_engine
from nightbatch.db.models import Run, RunStatus, Task
from nightbatch.emulator import EmulatorServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def flow_env(monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: Path, emulator: EmulatorServer) -> str:
    """Flows read their settings from the environment, as a deployed worker does."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("NIGHTBATCH_ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("NIGHTBATCH_DATABASE_URL", db_url)
    monkeypatch.setenv("NIGHTBATCH_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("NIGHTBATCH_TASK_CONFIG", str(EXAMPLES / "nightbatch.toml"))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
    emulator.configure(time_scale=36_000)  # an hour of batch time in a tenth of a second
    return db_url


def task_counts(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(Task.status, func.count()).group_by(Task.status)).all()
    engine.dispose()
    return {str(s): n for s, n in rows}


@pytest.mark.usefixtures("prefect_harness")
def test_nightly_flow_enqueues_submits_and_collects_everything(flow_env: str, tmp_path: Path):
    source = tmp_path / "tasks"
    source.mkdir()
    for name in ("ticket_triage", "date_extraction"):
        lines = (EXAMPLES / "tasks" / f"{name}.jsonl").read_text().splitlines()[:20]
        (source / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    result = nightly(NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=2))
    assert task_counts(flow_env) == {"succeeded": 40}
    assert result["outcomes"] == {"succeeded": 40}
    engine = make_engine(flow_env)
    with engine.connect() as conn:
        run = conn.execute(select(Run.kind, Run.status, Run.totals)).one()
    engine.dispose()
    assert (run.kind, run.status) == ("nightly", RunStatus.SUCCEEDED)
    assert run.totals["outcomes"] == {"succeeded": 40}


@pytest.mark.usefixtures("prefect_harness")
def test_submit_and_collect_flows_run_separately(flow_env: str, emulator: EmulatorServer):
    from nightbatch.queue.enqueue import enqueue

    engine = make_engine(flow_env)
    for n in range(5):
        enqueue(engine, "date_extraction", {"text": f"Paid on 2024-03-0{n + 1}."})
    engine.dispose()
    submitted = submit(SubmitParams())
    assert submitted["submitted"] == 5
    emulator.advance(3600)
    collected = collect(CollectParams())
    assert collected["ingested_batches"] == 1
    assert task_counts(flow_env) == {"succeeded": 5}


@pytest.mark.usefixtures("prefect_harness")
def test_a_nightly_run_publishes_its_cost_table_summary_and_batch_progress(flow_env: str, tmp_path: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.artifacts import COST_KEY, SUMMARY_KEY

    source = tmp_path / "tasks"
    source.mkdir()
    lines = (EXAMPLES / "tasks" / "policy_judgement.jsonl").read_text().splitlines()[:12]
    (source / "policy_judgement.jsonl").write_text("\n".join(lines) + "\n")
    nightly(NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=2))

    async def read(key_prefix: str) -> list:
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=key_prefix)))
            return sorted(found, key=lambda a: a.created, reverse=True)  # newest (this run's) first

    import asyncio

    table = asyncio.run(read(COST_KEY))
    assert table
    assert table[0].type == "table"
    rows = table[0].data if isinstance(table[0].data, list) else json.loads(table[0].data)
    assert any(r.get("task_type") == "policy_judgement" for r in rows)
    summary = asyncio.run(read(SUMMARY_KEY))
    assert summary
    assert summary[0].type == "markdown"
    assert "Needs attention" in summary[0].data
    progress = asyncio.run(read("nightbatch-batch-"))
    assert progress
    assert all(p.type == "progress" for p in progress)
    assert any(float(p.data) == 100.0 for p in progress)


@pytest.mark.usefixtures("prefect_harness")
def test_a_nightly_run_after_a_calibration_publishes_its_artifacts(
    flow_env: str, tmp_path: Path, emulator: EmulatorServer
):
    """Issue 15, item 2: a decided calibration made the report's quality section, and so the flow, fail."""
    from flows.runtime import services_for
    from nightbatch.quality.calibrate import finish_calibration, start_calibration

    source = tmp_path / "tasks"
    source.mkdir()
    lines = (EXAMPLES / "tasks" / "ticket_triage.jsonl").read_text().splitlines()[:10]
    (source / "ticket_triage.jsonl").write_text("\n".join(lines) + "\n")
    services = services_for(emulator.base_url)
    try:
        from nightbatch.sources import enqueue_source

        enqueue_source(services, str(source), default_task_type=None)
        calibration_id = start_calibration(services, "ticket_triage", 5)
        emulator.advance(3600)
        assert finish_calibration(services, calibration_id) is not None  # decided
    finally:
        services.close()
    result = nightly(NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=2))
    assert task_counts(flow_env) == {"succeeded": 10}
    assert result["outcomes"] == {"succeeded": 10}
    engine = make_engine(flow_env)
    with engine.connect() as conn:
        runs = conn.execute(select(Run.kind, Run.status).where(Run.kind == "nightly")).all()
    engine.dispose()
    assert [tuple(r) for r in runs] == [("nightly", RunStatus.SUCCEEDED)]


def test_a_nightly_run_pilots_then_fans_out_and_reads(flow_env: str, tmp_path: Path, emulator: EmulatorServer):
    from nightbatch.db.models import Batch

    # Ten simulated minutes a real second: a 1 h entry outlives the polls between the pilot and its fan-out.
    emulator.configure(time_scale=600)
    source = tmp_path / "tasks"
    source.mkdir()
    lines = (EXAMPLES / "tasks" / "policy_judgement.jsonl").read_text().splitlines()[:20]
    (source / "policy_judgement.jsonl").write_text("\n".join(lines) + "\n")
    result = nightly(NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=60, expected_batch_minutes=5))
    assert result["outcomes"] == {"succeeded": 20}
    engine = make_engine(flow_env)
    with engine.connect() as conn:
        roles = [(r.cache_role, r.request_count) for r in conn.execute(select(Batch).order_by(Batch.id))]
    engine.dispose()
    assert roles == [("pilot", 1), ("fanout", 19)]  # the collect that ingested the pilot sent the rest at once
    assert result["prefix_hit_rate"] > 0.9
