"""Each ``on_deadline`` policy with a stalled batch: the deadline passes, finished results are kept and billed
once, and the unfinished tasks go real-time, stay queued, or fail — on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Batch, Task, TaskStatus, UsageRecord
from nightbatch.deadline.policy import deadline_step
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue
from nightbatch.runs import start_run
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import CachePolicy, TaskTypeRegistry
from tests.fixtures.services import EXAMPLES

TYPE = "ticket_triage"
TASKS = 12
FINISHED = 4  # the stalled batch finishes this many before the queue sits on it


def with_policy(services: Services, policy: str) -> Services:
    """``TYPE`` with ``on_deadline = policy``; caching off, so one submit sends every task (no pilot waits)."""
    off = CachePolicy(mode="off")
    registry = TaskTypeRegistry(
        [
            t.model_copy(update={"on_deadline": policy, "cache": off} if t.name == TYPE else {"cache": off})
            for t in services.registry
        ]
    )
    return replace(services, registry=registry)


def enqueue_triage(services: Services, deadline: datetime | None) -> list[int]:
    with (EXAMPLES / "tasks" / f"{TYPE}.jsonl").open() as lines:
        rows = [json.loads(line) for line in itertools.islice(lines, TASKS)]
    return [enqueue(services.engine, TYPE, r["payload"], key=r["key"], deadline=deadline).task_id for r in rows]


def tasks(services: Services) -> dict[int, Task]:
    with Session(services.engine) as session:
        return {t.id: t for (t,) in session.exec(select(Task)).all() if t.id is not None}


def usage(services: Services) -> list[UsageRecord]:
    with Session(services.engine) as session:
        return [u for (u,) in session.exec(select(UsageRecord)).all()]


def stall_and_pass_the_deadline(
    services: Services, emulator: EmulatorServer, deadline: datetime, **step: Any
) -> tuple[list[Any], list[Any]]:
    """Submit, stall the batch after FINISHED requests, run the deadline step at the margin, ingest, settle."""
    emulator.configure(batch_concurrency=FINISHED)
    submitted = submit_step(services, task_types=[TYPE], run_id=step.get("run_id"))
    (outcome,) = submitted.batches
    assert outcome.provider_batch_id is not None
    emulator.stall_batch(outcome.provider_batch_id, after_requests=FINISHED)
    emulator.advance(60)
    collect_step(services)  # still in progress: the queue sits on the rest
    early = deadline_step(services, now=deadline - timedelta(hours=2), **step)
    assert early.canceled_batches == []  # not yet within the margin
    at_margin = deadline_step(services, now=deadline - timedelta(minutes=20), **step)
    assert at_margin.canceled_batches == [outcome.batch_id]
    emulator.advance(10)
    collected = collect_step(services)
    assert [r.batch_id for r in collected.ingested] == [outcome.batch_id]
    settled = deadline_step(services, now=deadline - timedelta(minutes=19), **step)
    return [at_margin, settled], [outcome]


def billed_once(services: Services, emulator: EmulatorServer) -> Counter[tuple[str, str]]:
    """Every billed response has one ledger row, each task at most one; returns (tier, purpose) counts."""
    rows = usage(services)
    assert len(rows) == len(emulator.ledger.entries())
    per_task = Counter(r.task_id for r in rows)
    assert max(per_task.values()) == 1
    return Counter((str(r.service_tier), str(r.purpose)) for r in rows)


def test_realtime_sends_the_unfinished_tasks_at_standard_prices(services: Services, emulator: EmulatorServer):
    services = with_policy(services, "realtime")
    deadline = datetime.now(UTC) + timedelta(hours=6)
    ids = enqueue_triage(services, deadline)
    (at_margin, settled), _ = stall_and_pass_the_deadline(services, emulator, deadline)
    after = tasks(services)
    assert {after[i].status for i in ids} == {TaskStatus.SUCCEEDED}
    assert sorted(settled.realtime) == sorted(i for i in ids if after[i].batch_id is None)
    assert len(settled.realtime) == TASKS - FINISHED
    assert billed_once(services, emulator) == {("batch", "task"): FINISHED, ("standard", "fallback"): TASKS - FINISHED}
    tiers = Counter(e.service_tier for e in emulator.ledger.entries())
    assert tiers == {"batch": FINISHED, "standard": TASKS - FINISHED}
    fallback = [u for u in usage(services) if str(u.purpose) == "fallback"]
    assert settled.fallback_pusd == sum(u.cost_pusd for u in fallback) > 0
    for task_id in settled.realtime:
        assert after[task_id].output_uri is not None
    assert any("sent real-time" in line for line in settled.notes())
    assert at_margin.notes()
    assert "canceled batches" in at_margin.notes()[0]


def test_next_run_leaves_the_unfinished_tasks_queued(services: Services, emulator: EmulatorServer):
    services = with_policy(services, "next_run")
    deadline = datetime.now(UTC) + timedelta(hours=6)
    ids = enqueue_triage(services, deadline)
    (_, settled), _ = stall_and_pass_the_deadline(services, emulator, deadline)
    after = tasks(services)
    statuses = Counter(after[i].status for i in ids)
    assert statuses == {TaskStatus.SUCCEEDED: FINISHED, TaskStatus.QUEUED: TASKS - FINISHED}
    queued = [after[i] for i in ids if after[i].status == TaskStatus.QUEUED]
    assert {(t.error_type, t.attempts) for t in queued} == {("deadline", 0)}  # the canceled claim is given back
    assert sorted(settled.left_queued) == sorted(t.id for t in queued)
    assert billed_once(services, emulator) == {("batch", "task"): FINISHED}

    # The next run sends only what is left: nothing that succeeded goes out again.
    emulator.configure(batch_concurrency=16)
    again = submit_step(services, task_types=[TYPE])
    assert again.submitted_tasks == TASKS - FINISHED
    emulator.advance(3600)
    collect_step(services)
    assert {t.status for t in tasks(services).values()} == {TaskStatus.SUCCEEDED}
    assert billed_once(services, emulator) == {("batch", "task"): TASKS}


def test_fail_fails_the_unfinished_tasks_with_the_reason(services: Services, emulator: EmulatorServer):
    services = with_policy(services, "fail")
    deadline = datetime.now(UTC) + timedelta(hours=6)
    ids = enqueue_triage(services, deadline)
    (_, settled), _ = stall_and_pass_the_deadline(services, emulator, deadline)
    after = tasks(services)
    failed = [after[i] for i in ids if after[i].status == TaskStatus.FAILED]
    assert len(failed) == TASKS - FINISHED
    assert sorted(settled.failed) == sorted(t.id for t in failed)
    assert {t.error_type for t in failed} == {"deadline"}
    assert all("deadline passed" in (t.error_message or "") for t in failed)
    assert billed_once(services, emulator) == {("batch", "task"): FINISHED}


def test_the_runs_deadline_governs_tasks_without_their_own(services: Services, emulator: EmulatorServer):
    services = with_policy(services, "realtime")
    run_id = start_run(services.engine, "nightly", {})
    ids = enqueue_triage(services, None)
    deadline = datetime.now(UTC) + timedelta(hours=6)
    (at_margin, settled), _ = stall_and_pass_the_deadline(
        services, emulator, deadline, run_id=run_id, run_deadline=deadline
    )
    assert at_margin.run_margin_passed
    assert len(settled.realtime) == TASKS - FINISHED
    assert {t.status for t in tasks(services).values()} == {TaskStatus.SUCCEEDED}
    assert {u.run_id for u in usage(services)} == {run_id}
    assert billed_once(services, emulator) == {("batch", "task"): FINISHED, ("standard", "fallback"): TASKS - FINISHED}
    with Session(services.engine) as session:
        (batch,) = [b for (b,) in session.exec(select(Batch)).all()]
    assert (batch.canceled_count, batch.succeeded_count) == (TASKS - FINISHED, FINISHED)
    assert (batch.error or "").startswith("deadline: canceled")
    assert ids


def test_a_tight_budget_keeps_the_fallback_queued(services: Services, emulator: EmulatorServer):
    services = with_policy(services, "realtime")
    deadline = datetime.now(UTC) + timedelta(hours=6)
    enqueue_triage(services, deadline)
    emulator.configure(batch_concurrency=FINISHED)
    (outcome,) = submit_step(services, task_types=[TYPE]).batches
    assert outcome.provider_batch_id is not None
    emulator.stall_batch(outcome.provider_batch_id, after_requests=FINISHED)
    emulator.advance(60)
    deadline_step(services, now=deadline - timedelta(minutes=20))
    emulator.advance(10)
    collect_step(services)
    settled = deadline_step(services, now=deadline - timedelta(minutes=19), budget_usd=Decimal("0.0001"))
    assert settled.budget_stopped is not None
    assert settled.realtime == []
    queued = [t for t in tasks(services).values() if t.status == TaskStatus.QUEUED]
    assert len(queued) == TASKS - FINISHED
    assert {t.error_type for t in queued} == {"budget"}
    assert billed_once(services, emulator) == {("batch", "task"): FINISHED}


def test_the_runs_deadline_covers_tasks_it_held_back_but_not_older_untouched_ones(
    services: Services, emulator: EmulatorServer
):
    """A task the run enqueued or handed back (over budget, waiting for a cache pilot) has no attempt in the
    run, yet is the run's: at its margin it is settled. A task queued before the run and never touched is not."""
    services = with_policy(services, "realtime")
    with (EXAMPLES / "tasks" / f"{TYPE}.jsonl").open() as lines:
        rows = [json.loads(line) for line in itertools.islice(lines, 2)]
    older = enqueue(services.engine, TYPE, rows[0]["payload"], key=rows[0]["key"]).task_id
    run_id = start_run(services.engine, "nightly", {})
    held = enqueue(services.engine, TYPE, rows[1]["payload"], key=rows[1]["key"]).task_id
    deadline = datetime.now(UTC) + timedelta(hours=6)
    report = deadline_step(
        services, now=deadline - timedelta(minutes=10), run_id=run_id, run_deadline=deadline, task_types=[TYPE]
    )
    assert report.realtime == [held]
    after = tasks(services)
    assert (after[held].status, after[older].status) == (TaskStatus.SUCCEEDED, TaskStatus.QUEUED)
