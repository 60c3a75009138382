"""De-duplication within a submit and response reuse across runs, end to end on the emulator (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Batch, Task, TaskStatus, TaskTwin, TwinKind, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue_jsonl
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types
from tests.pipeline.conftest import make_services
from tests.pipeline.stages_workload import CONFIG, write_config

BILLING = "My billing statement shows a double charge on 2026-03-05, please refund it."


@pytest.fixture
def chained(engine: Engine, tmp_path: Path, emulator: EmulatorServer) -> Iterator[Services]:
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    services.registry = load_task_types(write_config(tmp_path))
    yield services
    services.close()


def enqueue(engine: Engine, *texts: str, task_type: str = "triage", prefix: str = "t") -> None:
    lines = [json.dumps({"task_type": task_type, "key": f"{prefix}-{n}", "payload": {"text": text}})
             for n, text in enumerate(texts)]  # fmt: skip
    enqueue_jsonl(engine, lines, source_name="dups.jsonl")


def rows(engine: Engine, model: type) -> list:
    with engine.connect() as conn:
        return [model.model_validate(r._mapping) for r in conn.execute(select(model).order_by(col(model.id)))]


def test_identical_requests_in_one_submit_are_sent_once_and_the_twins_get_the_output_at_no_cost(
    chained: Services, emulator: EmulatorServer
):
    enqueue(chained.engine, BILLING, BILLING, "The export button crashes with a bug.", BILLING)
    report = submit_step(chained)
    assert (report.claimed, report.submitted_tasks, report.deduplicated) == (4, 2, 2)
    emulator.advance(3600)
    collect_step(chained)
    assert len(emulator.ledger.entries()) == 2  # the provider billed two requests for four tasks
    tasks = [t for t in rows(chained.engine, Task) if t.task_type == "triage"]
    assert [t.status for t in tasks] == [TaskStatus.SUCCEEDED] * 4
    assert [t.output_inline for t in tasks] == ["billing", "billing", "bug", "billing"]
    billed = {u.task_id for u in rows(chained.engine, UsageRecord)}
    assert billed == {tasks[0].id, tasks[2].id}  # the twins carry no cost of their own
    twins = rows(chained.engine, TaskTwin)
    assert {(t.task_id, t.leader_task_id, t.kind) for t in twins} == {
        (tasks[1].id, tasks[0].id, TwinKind.DEDUP),
        (tasks[3].id, tasks[0].id, TwinKind.DEDUP),
    }
    assert tasks[1].output_uri == tasks[0].output_uri
    assert tasks[1].output_line == tasks[0].output_line
    # A twin is an upstream result like any other: its stages are enqueued too (reply and dates, each).
    stage_tasks = [t for t in rows(chained.engine, Task) if t.task_type in ("reply", "dates")]
    assert len(stage_tasks) == 6


def test_a_twin_follows_its_leader_back_to_the_queue_when_the_leader_is_retried(
    chained: Services, emulator: EmulatorServer
):
    enqueue(chained.engine, BILLING, BILLING)
    emulator.faults.error_requests("overloaded_error", rate=1.0)
    assert submit_step(chained).deduplicated == 1
    emulator.advance(3600)
    collect_step(chained)
    tasks = rows(chained.engine, Task)
    assert [t.status for t in tasks] == [TaskStatus.QUEUED, TaskStatus.QUEUED]
    assert tasks[1].attempts == 0  # the twin sent nothing: no attempt counted
    emulator.faults.clear()
    for _ in range(2):
        submit_step(chained)
        emulator.advance(3600)
        collect_step(chained)
    assert [t.status for t in rows(chained.engine, Task) if t.task_type == "triage"] == [TaskStatus.SUCCEEDED] * 2


def test_dedupe_false_sends_every_request(chained: Services, emulator: EmulatorServer, tmp_path: Path):
    config = tmp_path / "nodedupe.toml"
    config.write_text(CONFIG.replace('template = "Ticket: {text}"', 'template = "Ticket: {text}"\ndedupe = false', 1))
    chained.registry = load_task_types(config)
    enqueue(chained.engine, BILLING, BILLING)
    report = submit_step(chained)
    assert (report.submitted_tasks, report.deduplicated) == (2, 0)


def test_reuse_serves_an_identical_request_within_the_window_and_not_after(
    chained: Services, emulator: EmulatorServer, tmp_path: Path
):
    config = tmp_path / "reuse.toml"
    config.write_text(
        CONFIG.replace('template = "Ticket: {text}"', 'template = "Ticket: {text}"\nreuse_responses = "1d"', 1)
    )
    chained.registry = load_task_types(config)
    enqueue(chained.engine, BILLING, task_type="triage", prefix="night-1")
    submit_step(chained)
    emulator.advance(3600)
    collect_step(chained)
    with chained.engine.connect() as conn:
        ended = conn.execute(select(Batch.ended_at).where(col(Batch.ended_at).is_not(None))).scalars().first()
    assert ended is not None
    billed_before = len(emulator.ledger.entries())

    enqueue(chained.engine, BILLING, task_type="triage", prefix="night-2")  # the same request, the next night
    report = submit_step(chained, task_types=["triage"], now=ended + timedelta(hours=20))
    assert (report.reused, report.submitted_tasks) == (1, 0)
    assert len(emulator.ledger.entries()) == billed_before  # no API call
    night_1, night_2 = [t for t in rows(chained.engine, Task) if t.task_type == "triage"]
    assert night_2.status == TaskStatus.SUCCEEDED
    assert night_2.output_inline == night_1.output_inline == "billing"
    with chained.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(col(UsageRecord.task_id) == night_2.id)).scalar_one() == 0
        (twin,) = conn.execute(select(TaskTwin).where(col(TaskTwin.task_id) == night_2.id)).all()
    assert (twin.kind, twin.leader_task_id) == (TwinKind.REUSE, night_1.id)
    # Its stages are enqueued as for any success (reply and dates, for a billing ticket).
    assert len([t for t in rows(chained.engine, Task) if t.task_type in ("reply", "dates")]) == 4

    enqueue(chained.engine, BILLING, task_type="triage", prefix="night-3")  # two days later: past the window
    late = submit_step(chained, task_types=["triage"], now=ended + timedelta(days=2))
    assert (late.reused, late.submitted_tasks) == (0, 1)
