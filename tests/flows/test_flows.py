"""The Prefect flows, run for real against the test harness, the emulator and the test database."""

from __future__ import annotations

import json
import re
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
from nightbatch.errors import RunFailedError

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
    state = nightly(
        NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=2, wait=True), return_state=True
    )
    assert state.is_completed()
    assert state.message.startswith("40 succeeded, 0 failed; cost $")
    result = state.result()
    assert task_counts(flow_env) == {"succeeded": 40}
    assert result["outcomes"] == {"succeeded": 40}
    assert result["outcome"]["ok"] is True
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
    submitted = submit(SubmitParams(task_type="date_extraction"))
    assert submitted["submitted"] == 5
    emulator.advance(3600)
    collected = collect(CollectParams())
    assert collected["ingested_batches"] == 1
    assert task_counts(flow_env) == {"succeeded": 5}


@pytest.mark.usefixtures("prefect_harness")
def test_a_nightly_run_publishes_its_cost_table_summary_and_batch_progress(flow_env: str, tmp_path: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    source = tmp_path / "tasks"
    source.mkdir()
    lines = (EXAMPLES / "tasks" / "policy_judgement.jsonl").read_text().splitlines()[:12]
    (source / "policy_judgement.jsonl").write_text("\n".join(lines) + "\n")
    nightly(NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=2, wait=True))

    async def read(key_prefix: str) -> list:
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=key_prefix)))
            return sorted(found, key=lambda a: a.created, reverse=True)  # newest (this run's) first

    import asyncio

    table = asyncio.run(read("nightbatch-adhoc-cost"))
    assert table
    assert table[0].type == "table"
    rows = table[0].data if isinstance(table[0].data, list) else json.loads(table[0].data)
    assert any(r.get("task type") == "policy_judgement" for r in rows)  # display headers
    summary = asyncio.run(read("nightbatch-adhoc-run-summary"))
    assert summary
    assert summary[0].type == "markdown"
    text = summary[0].data
    assert text.index("| succeeded | 12 |") < text.index("Needs attention") < text.index("Cost report")
    assert "| task type | model | tasks | cost | per task | pass rate |" in text
    # The verdict line and the cost report name the same naive baseline (the config's top model).
    import re

    assert re.search(r"below the naive (\$[\d.,]+)", text)[1] == re.search(r"naive cost (\$[\d.,]+)", text)[1]
    progress = asyncio.run(read("nightbatch-adhoc-progress"))
    assert progress[0].type == "progress"
    assert float(progress[0].data) == 100.0
    batches = asyncio.run(read("nightbatch-adhoc-batch-progress"))
    assert batches[0].type == "table"
    batch_rows = batches[0].data if isinstance(batches[0].data, list) else json.loads(batches[0].data)
    assert {r["task type"] for r in batch_rows} == {"policy_judgement"}
    assert {r["role"] for r in batch_rows} <= {"pilot", "fan-out", "uncached"}  # the queue's own work, no shadow
    assert {r["state"] for r in batch_rows} == {"ingested"}


def _enqueue(db_url: str, task_type: str, payloads: list[dict]) -> None:
    from nightbatch.queue.enqueue import enqueue

    engine = make_engine(db_url)
    for payload in payloads:
        enqueue(engine, task_type, payload)
    engine.dispose()


@pytest.mark.usefixtures("prefect_harness")
def test_tasks_failing_before_sending_fail_the_night_and_need_attention(flow_env: str):
    good = [{"text": f"Paid on 2024-03-0{n + 1}."} for n in range(8)]
    _enqueue(flow_env, "date_extraction", [*good, {"note": "no text field"}])  # the template needs {text}
    state = nightly(NightlyParams(poll_seconds=0.2, deadline_minutes=2, wait=True), return_state=True)
    assert state.is_failed()
    assert state.message.startswith("Problems: 1 of 9 tasks failed (11.1%, over 0.5%).")
    assert "8 succeeded, 1 failed (1 before sending)" in state.message
    failure = state.result(raise_on_failure=False)
    assert isinstance(failure, RunFailedError)
    assert str(failure) == state.message  # what Prefect logs when a deployment's run ends Failed
    result = failure.totals
    assert result["failed_before_sending"] == {"invalid_task": 1}
    engine = make_engine(flow_env)
    with engine.connect() as conn:
        status = conn.execute(select(Run.status)).scalar_one()
    engine.dispose()
    assert status == RunStatus.FAILED


@pytest.mark.usefixtures("prefect_harness")
def test_a_budget_stop_fails_the_night(flow_env: str):
    _enqueue(flow_env, "date_extraction", [{"text": f"Paid on 2024-03-{n + 10}."} for n in range(10)])
    state = nightly(NightlyParams(budget_usd=0, poll_seconds=0.2, deadline_minutes=2, wait=True), return_state=True)
    assert state.is_failed()
    assert "budget stop" in state.message


@pytest.mark.usefixtures("prefect_harness")
def test_a_night_that_does_not_wait_is_judged_by_the_collect_that_ends_its_batches(
    flow_env: str, emulator: EmulatorServer, emitted
):
    _enqueue(flow_env, "date_extraction", [{"text": f"Paid on 2024-04-0{n + 1}."} for n in range(5)])
    handed = nightly(NightlyParams(), return_state=True)  # the scheduled shape: submit and return
    assert handed.is_completed()
    assert "5 submitted" in handed.message
    assert "1 batch(es) still open" in handed.message
    emulator.advance(3600)
    state = collect(CollectParams(), return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["finished_runs"] == [handed.result()["run_id"]]
    assert "5 succeeded, 0 failed" in state.message
    names = [e.event for e in emitted() if e.event.startswith("nightbatch.run.")]
    assert names == ["nightbatch.run.submitted", "nightbatch.run.finished"]  # announced finished once
    engine = make_engine(flow_env)
    with engine.connect() as conn:
        totals = conn.execute(select(Run.totals)).scalar_one()
    engine.dispose()
    assert totals["outcomes"] == {"succeeded": 5}
    assert totals["collected"] is True


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch):
    """Prefect's own asserting events client: the events our flows emit, as an automation would see them."""
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker

    worker = EventsWorker.instance(AssertingEventsClient)
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker)

    def events() -> list:
        worker.drain()
        return list(worker._client.events)

    yield events
    worker.drain()
    worker._client.events = []


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_night_emits_events_an_automation_can_match(flow_env: str, emitted):
    _enqueue(flow_env, "date_extraction", [{"text": "Paid on 2024-06-01."}, {"note": "no text"}])
    nightly(NightlyParams(poll_seconds=0.2, deadline_minutes=2, wait=True), return_state=True)
    events = emitted()
    finished = [e for e in events if e.event == "nightbatch.run.finished"]
    assert len(finished) == 1
    run = finished[0]
    assert run.resource.id.startswith("nightbatch.run.adhoc.")
    assert run.resource["nightbatch.outcome"] == "problems"
    assert run.resource["nightbatch.deployment"] == "adhoc"
    assert run.payload["failed_before_sending"] == {"invalid_task": 1}
    assert "flow-run" in {r.role for r in run.related}  # Prefect adds the run context
    (ended,) = [e for e in events if e.event == "nightbatch.batch.ended"]
    assert ended.resource.id == "nightbatch.task-type.date_extraction"
    assert ended.resource["nightbatch.model"]
    assert ended.payload["outcomes"]


@pytest.mark.usefixtures("prefect_harness")
def test_a_waiting_night_that_ingests_an_earlier_nights_last_batch_judges_that_night(
    flow_env: str, emulator: EmulatorServer
):
    _enqueue(flow_env, "date_extraction", [{"text": f"Paid on 2024-07-0{n + 1}."} for n in range(3)])
    first = nightly(NightlyParams(), return_state=True).result()  # handed over to collect
    emulator.advance(3600)
    nightly(NightlyParams(poll_seconds=0.2, deadline_minutes=2, wait=True), return_state=True)
    engine = make_engine(flow_env)
    with engine.connect() as conn:
        status, totals = conn.execute(select(Run.status, Run.totals).where(Run.id == first["run_id"])).one()
    engine.dispose()
    assert totals["collected"] is True
    assert totals["outcomes"] == {"succeeded": 3}
    assert status == RunStatus.SUCCEEDED


@pytest.mark.usefixtures("prefect_harness")
def test_a_nightly_run_after_a_calibration_publishes_its_artifacts(
    flow_env: str, tmp_path: Path, emulator: EmulatorServer
):
    """Issue 15, item 2: a decided calibration made the report's quality section, and so the flow, fail."""
    from flows.runtime import services_for
    from nightbatch.calibrate import finish_calibration, start_calibration

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
    result = nightly(NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=2, wait=True))
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
    result = nightly(
        NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=60, expected_batch_minutes=5, wait=True)
    )
    assert result["outcomes"] == {"succeeded": 20}
    engine = make_engine(flow_env)
    with engine.connect() as conn:
        roles = [(r.cache_role, r.request_count) for r in conn.execute(select(Batch).order_by(Batch.id))]
    engine.dispose()
    assert roles == [("pilot", 1), ("fanout", 19)]  # the collect that ingested the pilot sent the rest at once
    assert result["prefix_hit_rate"] > 0.9


@pytest.mark.usefixtures("prefect_harness")
def test_a_night_that_does_not_wait_gets_its_fan_out_from_the_collect_that_ingests_its_pilot(
    flow_env: str, tmp_path: Path, emulator: EmulatorServer
):
    """The scheduled shape: the night sends a pilot and returns; the collect that ingests the pilot sends the
    group's waiting tasks at once (not at the next night's submit, when the pilot's entry could be gone)."""
    from nightbatch.db.models import Batch

    source = tmp_path / "tasks"
    source.mkdir()
    lines = (EXAMPLES / "tasks" / "policy_judgement.jsonl").read_text().splitlines()[:12]
    (source / "policy_judgement.jsonl").write_text("\n".join(lines) + "\n")
    handed = nightly(NightlyParams(source=str(source), expected_batch_minutes=5), return_state=True)
    assert handed.is_completed()
    emulator.advance(600)
    collect(CollectParams())  # ingests the pilot, sends the fan-out
    emulator.advance(600)
    state = collect(CollectParams(), return_state=True)  # ingests the fan-out and judges the night
    assert state.is_completed()
    assert state.result()["finished_runs"] == [handed.result()["run_id"]]
    engine = make_engine(flow_env)
    with engine.connect() as conn:
        batches = [(b.cache_role, b.request_count, b.run_id) for b in conn.execute(select(Batch).order_by(Batch.id))]
        tasks = conn.execute(select(Task.status)).scalars().all()
    engine.dispose()
    run_id = handed.result()["run_id"]
    assert batches == [("pilot", 1, run_id), ("fanout", 11, run_id)]
    assert set(tasks) == {"succeeded"}


@pytest.mark.usefixtures("prefect_harness")
def test_a_simulated_night_says_so_and_names_its_runs_in_the_ui(flow_env: str, tmp_path: Path):
    """What an operator sees in the Prefect UI: SIMULATED on every artifact of a run against the emulator,
    the cost table with hit rate, naive cost and saving per row, and runs named after the nightbatch run."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId

    source = tmp_path / "tasks"
    source.mkdir()
    lines = (EXAMPLES / "tasks" / "ticket_triage.jsonl").read_text().splitlines()[:6]
    (source / "ticket_triage.jsonl").write_text("\n".join(lines) + "\n")
    state = nightly(
        NightlyParams(source=str(source), poll_seconds=0.2, deadline_minutes=2, wait=True), return_state=True
    )
    run_id = state.result()["run_id"]
    flow_run_id = state.state_details.flow_run_id

    async def read() -> tuple:
        async with get_client() as client:
            flow_run = await client.read_flow_run(flow_run_id)
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            task_runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            return flow_run, artifacts, task_runs

    flow_run, artifacts, task_runs = asyncio.run(read())
    assert re.fullmatch(rf"nightly run {run_id}, \d{{4}}-\d\d-\d\d \d\d:\d\d UTC", flow_run.name)
    names = {t.name for t in task_runs}
    assert {f"submit-run-{run_id}", f"deadline-check-run-{run_id}", "poll-open-batches", "enqueue-tasks"} <= names
    by_key = {a.key.rsplit("-", 1)[-1] if not a.key.endswith("run-summary") else "run-summary": a for a in artifacts}
    assert all(a.description.startswith("SIMULATED (local emulator): ") for a in artifacts)
    summary = by_key["run-summary"].data
    assert summary.startswith(f"# nightbatch run {run_id}: Completed (SIMULATED)\n\n> **SIMULATED**: no API key")
    cost = by_key["cost"].data
    rows = cost if isinstance(cost, list) else json.loads(cost)
    total = rows[-1]
    assert total["task type"] == "total"
    assert total["naive cost"].startswith("$")
    assert "naive = the same responses real-time on claude-" in by_key["cost"].description
    assert total["saved vs naive"].endswith("%")
    assert total["prefix hit rate"].endswith("%")
    assert not any(v in ("None", "nan") for row in rows for v in row.values())
