"""Pilot batches: one task writes its group's prefix in a batch of its own, the rest wait, then read.

Through the real SDK against the emulator, on SQLite and PostgreSQL. The assertions hold under the real
batch-cache model (items of one batch never read each other's writes; a later batch reads what an earlier
batch wrote): the only reads are by batches sent after the pilot ended.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Batch, CacheEntry, CacheState, Task, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from tests.pipeline.conftest import enqueue_examples, example_tasks

JUDGED = ["policy_judgement"]


def enqueue_judged(services: Services, start: int, stop: int) -> None:
    judged = [t for t in example_tasks(stop) if t[0] == JUDGED[0]][start:stop]
    for task_type, payload, key in judged:
        enqueue(services.engine, task_type, payload, key=key)


def statuses(services: Services) -> Counter[str]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(Task.status, func.count()).where(col(Task.task_type) == JUDGED[0]).group_by(Task.status)
        )
        return Counter({str(s): n for s, n in rows})


def batches(services: Services) -> list[Batch]:
    with Session(services.engine) as session:
        return list(session.exec(select(Batch).order_by(col(Batch.id))).scalars())


def entry(services: Services) -> CacheEntry:
    with Session(services.engine) as session:
        found = session.exec(select(CacheEntry).where(col(CacheEntry.model) == "claude-opus-4-8")).scalars().one()
        session.expunge(found)
        return found


def usage_of(services: Services, batch_id: int) -> list[UsageRecord]:
    with Session(services.engine) as session:
        return list(session.exec(select(UsageRecord).where(col(UsageRecord.batch_id) == batch_id)).scalars())


def finish(services: Services, emulator: EmulatorServer) -> None:
    emulator.advance(120)
    report = collect_step(services)
    assert report.still_open == 0, report


def test_pilot_then_fan_out_reads(services: Services, emulator: EmulatorServer) -> None:
    enqueue_examples(services.engine, per_type=20)
    first = submit_step(services, task_types=JUDGED)
    # One task goes out alone with a 1 h breakpoint; the other 19 wait, queued, their attempt given back.
    assert (first.pilots, first.submitted_tasks, first.waiting_tasks) == (1, 1, 19)
    [pilot] = batches(services)
    assert (pilot.cache_role, pilot.cache_ttl, pilot.request_count) == ("pilot", "1h", 1)
    assert pilot.cache_decision is not None
    assert pilot.cache_decision["option"] == "pilot_1h"
    assert entry(services).state == CacheState.PILOT_RUNNING
    assert entry(services).pilot_batch_id == pilot.id
    assert statuses(services) == {"submitted": 1, "queued": 19}
    with services.engine.connect() as conn:
        assert conn.execute(select(func.max(Task.attempts)).where(col(Task.status) == "queued")).scalar() == 0

    # While the pilot runs, the group keeps waiting: nothing else goes out.
    again = submit_step(services, task_types=JUDGED)
    assert (again.submitted_tasks, again.waiting_tasks, len(batches(services))) == (0, 19, 1)
    assert again.decisions
    assert next(iter(again.decisions.values()))["option"] == "wait"

    emulator.advance(120)
    collected = collect_step(services)
    assert collected.pilots_ended == 1
    assert entry(services).state == CacheState.WARM
    [pilot_usage] = usage_of(services, pilot.id)  # an ordinary task result, ingested and billed
    assert pilot_usage.cache_write_1h_tokens > 10_000
    assert pilot_usage.cache_read_tokens == 0

    fan = submit_step(services, task_types=JUDGED)
    assert (fan.pilots, fan.submitted_tasks) == (0, 19)
    fanout = batches(services)[-1]
    assert (fanout.cache_role, fanout.cache_ttl, fanout.request_count) == ("fanout", "1h", 19)
    finish(services, emulator)
    rows = usage_of(services, fanout.id)
    assert len(rows) == 19
    assert all(r.cache_read_tokens == pilot_usage.cache_write_1h_tokens for r in rows)
    assert all(r.cache_write_1h_tokens == r.cache_write_5m_tokens == 0 for r in rows)
    assert statuses(services) == {"succeeded": 20}


def test_a_second_round_inside_the_ttl_sends_no_pilot(services: Services, emulator: EmulatorServer) -> None:
    enqueue_examples(services.engine, per_type=6)
    submit_step(services, task_types=JUDGED)
    finish(services, emulator)
    submit_step(services, task_types=JUDGED)
    finish(services, emulator)
    assert statuses(services) == {"succeeded": 6}
    # A later run (new tasks of the same group) within the entry's life reads at once.
    enqueue_judged(services, 6, 12)
    later = submit_step(services, task_types=JUDGED)
    assert (later.pilots, later.submitted_tasks, later.waiting_tasks) == (0, 6, 0)
    assert batches(services)[-1].cache_role == "fanout"
    finish(services, emulator)
    assert all(r.cache_read_tokens > 10_000 for r in usage_of(services, batches(services)[-1].id))
    # Past the entry's known life, the group is cold again: a pilot first.
    enqueue_judged(services, 12, 20)
    expired = submit_step(services, task_types=JUDGED, now=datetime.now(UTC) + timedelta(hours=2))
    assert (expired.pilots, expired.submitted_tasks, expired.waiting_tasks) == (1, 1, 7)


def test_a_deadline_too_close_skips_the_pilot(services: Services, emulator: EmulatorServer) -> None:
    enqueue_examples(services.engine, per_type=10)
    report = submit_step(services, task_types=JUDGED, deadline=datetime.now(UTC) + timedelta(minutes=20))
    assert (report.pilots, report.submitted_tasks, report.waiting_tasks) == (0, 10, 0)
    [sent] = batches(services)
    assert sent.cache_ttl is None
    assert sent.cache_role is None
    assert sent.cache_decision is not None
    assert "no room for a pilot" in sent.cache_decision["reason"]
    finish(services, emulator)
    with services.engine.connect() as conn:
        writes = conn.execute(select(func.sum(UsageRecord.cache_write_1h_tokens + UsageRecord.cache_write_5m_tokens)))
        assert writes.scalar() == 0
