"""Pilot batches: one task writes its group's prefix in a batch of its own, the rest wait, then read.

Through the real SDK against the emulator, on SQLite and PostgreSQL. The assertions hold under the real
batch-cache model (items of one batch never read each other's writes; a later batch reads what an earlier
batch wrote): the only reads are by batches sent after the pilot ended.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlmodel import Session, col

from nightbatch.collect.poll import collect_step
from nightbatch.db.cache_entries import measured_hit_rate
from nightbatch.db.models import Batch, CacheEntry, CacheState, Run, Task, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue
from nightbatch.report.attention import attention_items
from nightbatch.report.build import build_report
from nightbatch.report.query import Selection
from nightbatch.report.render import headline, report_csv, report_markdown, report_to_dict
from nightbatch.report.summary import summarize
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import CachePolicy, TaskTypeRegistry
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


def test_a_low_measured_hit_rate_stops_caching_the_group(services: Services, emulator: EmulatorServer) -> None:
    # Best-effort batch reads: each fan-out item finds the live entry with probability 0.3 (the docs' low end).
    emulator.configure(batch_cache_hit_probability=0.3)
    enqueue_judged(services, 0, 30)
    submit_step(services, task_types=JUDGED)  # the pilot
    finish(services, emulator)
    fan = submit_step(services, task_types=JUDGED)
    assert fan.submitted_tasks == 29
    fanout = batches(services)[-1]
    assert fanout.cache_role == "fanout"
    assert fanout.cache_decision is not None
    assert fanout.cache_decision["hit_rate_source"].startswith("prior")
    finish(services, emulator)
    rows = usage_of(services, fanout.id)
    reads = sum(r.cache_read_tokens for r in rows)
    writes = sum(r.cache_write_1h_tokens for r in rows)
    measured = reads / (reads + writes)
    assert measured < 0.55  # a miss pays the write again

    # The run's attention items name the batch, its group, the planned and the measured figure.
    with services.engine.begin() as conn:
        run = conn.execute(insert(Run).values(kind="nightly", parameters={})).inserted_primary_key[0]
        conn.execute(update(Batch).values(run_id=run))
        conn.execute(update(UsageRecord).values(run_id=run))
    items = [i for i in attention_items(services.engine, services.registry, run) if "its plan expected" in i]
    assert len(items) == 1
    assert fanout.provider_batch_id in items[0]
    assert "claude-opus-4-8/" in items[0]
    assert f"read {measured:.0%}" in items[0]
    assert "expected 80%" in items[0]

    # The next tasks of the group: the entry is alive, but at the measured rate reads do not pay: uncached.
    enqueue_judged(services, 30, 50)
    later = submit_step(services, task_types=JUDGED)
    assert (later.pilots, later.submitted_tasks) == (0, 20)
    sent = batches(services)[-1]
    assert sent.cache_ttl is None
    assert sent.cache_decision is not None
    assert sent.cache_decision["option"] == "none"
    assert sent.cache_decision["hit_rate_source"] == "measured"
    assert sent.cache_decision["hit_rate"] == pytest.approx(measured, abs=1e-3)
    # A week on, the bad figures are out of the window: the group is tried again (at the prior rate).
    assert measured_hit_rate(services.engine, "claude-opus-4-8", fanout.prefix_hash or "") is not None
    later_on = datetime.now(UTC) + timedelta(days=8)
    assert measured_hit_rate(services.engine, "claude-opus-4-8", fanout.prefix_hash or "", now=later_on) is None


def test_the_report_puts_every_prefix_token_in_one_bucket(services: Services, emulator: EmulatorServer) -> None:
    enqueue_examples(services.engine, per_type=20)
    while True:
        report = submit_step(services)
        finish(services, emulator)
        if not report.waiting_tasks:
            break
    built = build_report(services.engine, services.prices, Selection.everything())
    figures = {f.task_type: f for f in built.prefix}
    judged = figures["policy_judgement"]
    # One pilot wrote the policy prefix; the 19 tasks after it read it.
    assert judged.written == judged.prefix_tokens
    assert judged.read == 19 * judged.prefix_tokens
    assert judged.below_minimum == judged.not_marked == 0
    assert judged.hit_rate == pytest.approx(19 / 20, abs=0.01)
    # The date prompt is below Haiku 4.5's minimum: never cacheable, said so, and advice is given.
    dates = figures["date_extraction"]
    assert dates.below_minimum == dates.sent > 0
    assert dates.read == dates.written == 0
    advice = [a for a in built.advice if a.startswith("date_extraction: prefix")]
    assert len(advice) == 1
    assert "< 4,096 minimum of claude-haiku-4-5, not cached" in advice[0]
    assert "claude-haiku-5-5 caches from 512" in advice[0]
    # The headline is read ÷ all prefix tokens; read ÷ (read + write) is the second, labelled figure.
    sent = sum(f.sent for f in built.prefix)
    assert built.prefix_hit_rate == pytest.approx(sum(f.read for f in built.prefix) / sent)
    assert built.prefix_hit_rate < built.cache.hit_rate  # type: ignore[operator]
    data = report_to_dict(built)
    assert data["cache"]["prefix_hit_rate"] == built.prefix_hit_rate
    assert {row["task_type"] for row in data["cache"]["prefix"]} == set(figures)
    assert "prefix hit rate" in headline(built)
    assert "## Prefix tokens by task type" in report_markdown(built)
    assert "prefix_below_minimum_tokens" in report_csv(built).splitlines()[0]
    summary = summarize(services.engine, services.prices)
    assert summary.prefix_hit_rate == pytest.approx(built.prefix_hit_rate)
    assert summary.advice == built.advice


def test_a_padded_prefix_is_cached(services: Services, emulator: EmulatorServer) -> None:
    padded = services.registry.get("date_extraction").model_copy(update={"cache": CachePolicy(pad_to_minimum=True)})
    services.registry = TaskTypeRegistry([padded, *(t for t in services.registry if t.name != padded.name)])
    enqueue_examples(services.engine, per_type=20)
    first = submit_step(services, task_types=["date_extraction"])
    assert (first.pilots, first.submitted_tasks) == (1, 1)
    finish(services, emulator)
    submit_step(services, task_types=["date_extraction"])
    finish(services, emulator)
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(UsageRecord.cache_read_tokens, UsageRecord.cache_write_1h_tokens).where(
                col(UsageRecord.model) == "claude-haiku-4-5"
            )
        ).all()
    assert len(rows) == 20
    assert sum(1 for read, write in rows if write >= 4096) == 1  # the pilot
    assert sum(1 for read, write in rows if read >= 4096) == 19  # the rest read the padded prefix


def test_a_waiting_tasks_shadow_is_sent_once_with_its_task(services: Services, emulator: EmulatorServer) -> None:
    # ticket_triage shadows 5% of its tasks to the next rung; its prefix pilots, so most tasks wait.
    enqueue_examples(services.engine, per_type=200)
    while True:
        report = submit_step(services, task_types=["ticket_triage"])
        finish(services, emulator)
        if not report.waiting_tasks:
            break
    shadows = [e.custom_id for e in emulator.ledger.entries() if (e.custom_id or "").startswith("s")]
    assert shadows, "the sample has shadow requests"
    assert len(shadows) == len(set(shadows)), "a shadow request was sent (and billed) twice"


def test_a_group_of_shadow_requests_pilots_too(services: Services, emulator: EmulatorServer) -> None:
    # The triage shadows (5% of the tasks, to claude-sonnet-4-6) share the long triage guide: worth caching.
    enqueue_examples(services.engine, per_type=400)
    while True:
        report = submit_step(services, task_types=["ticket_triage"])
        finish(services, emulator)
        if not report.waiting_tasks:
            break
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(UsageRecord.cache_read_tokens, UsageRecord.cache_write_1h_tokens).where(
                col(UsageRecord.purpose) == "shadow"
            )
        ).all()
    assert len(rows) > 5
    assert sum(1 for _, write in rows if write > 0) == 1  # one shadow pilot wrote the guide on Sonnet
    assert sum(1 for read, _ in rows if read > 4000) == len(rows) - 1  # every other shadow read it
    assert statuses_of(services, "ticket_triage") == {"succeeded": 400}


def statuses_of(services: Services, task_type: str) -> Counter[str]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(Task.status, func.count()).where(col(Task.task_type) == task_type).group_by(Task.status)
        )
        return Counter({str(s): n for s, n in rows})
