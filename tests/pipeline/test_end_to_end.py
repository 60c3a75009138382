"""The whole path, on SQLite and PostgreSQL, local folder and moto's S3 server, against the emulator."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from urllib.parse import unquote

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from nightbatch.collect.ingest import ingest_batch
from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Batch, BatchStatus, Task, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.pricing import Usage, price_usage
from nightbatch.report.summary import summarize
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from tests.pipeline.conftest import enqueue_examples


def provider_cost_pusd(services: Services, emulator: EmulatorServer) -> int:
    """What the emulator billed, priced independently of the ingest path."""
    total = 0
    for entry in emulator.ledger.entries():
        usage = Usage(
            input_tokens=entry.input_tokens,
            output_tokens=entry.output_tokens,
            cache_write_5m_tokens=entry.ephemeral_5m_input_tokens,
            cache_write_1h_tokens=entry.ephemeral_1h_input_tokens,
            cache_read_tokens=entry.cache_read_input_tokens,
        )
        tier = "batch" if entry.service_tier == "batch" else "standard"
        total += price_usage(services.prices, entry.model, usage, tier).total_pusd
    return total


def statuses(services: Services) -> Counter[str]:
    with services.engine.connect() as conn:
        return Counter({str(s): n for s, n in conn.execute(select(Task.status, func.count()).group_by(Task.status))})


def test_every_task_goes_out_once_and_comes_back_with_its_exact_cost(services: Services, emulator: EmulatorServer):
    task_ids = enqueue_examples(services.engine, per_type=12)
    report = submit_step(services)
    assert report.claimed == len(task_ids) == 48
    # One batch per (model, prefix): four task types, four prefixes. The two prefixes worth caching (the
    # triage guide, the policy document) go out as one-task pilots first; their other 22 tasks wait queued.
    assert len(report.batches) == 4
    assert (report.pilots, report.submitted_tasks, report.waiting_tasks) == (2, 26, 22)
    assert statuses(services) == {"submitted": 26, "queued": 22}

    emulator.advance(120)
    collected = collect_step(services)
    assert len(collected.ingested) == 4
    assert collected.pilots_ended == 2
    fan_out = submit_step(services)
    assert (fan_out.pilots, fan_out.submitted_tasks, len(fan_out.batches)) == (0, 22, 2)
    emulator.advance(120)
    assert len(collect_step(services).ingested) == 2
    assert statuses(services) == {"succeeded": 48}

    # The ledger holds exactly what the provider billed, priced exactly.
    with Session(services.engine) as session:
        rows = session.exec(select(UsageRecord)).all()
    assert len(rows) == len(emulator.ledger) == 48
    assert sum(r[0].cost_pusd for r in rows) == provider_cost_pusd(services, emulator)
    assert {r[0].service_tier for r in rows} == {"batch"}

    # Each task points at its own line of a Hive-partitioned shard in the object store.
    with Session(services.engine) as session:
        tasks = session.exec(select(Task)).all()
    shards = {
        services.store.uri(o.key): services.store.get_bytes(o.key).splitlines() for o in services.store.list("outputs/")
    }
    assert len(shards) == 6  # one per task type per batch
    for (task,) in tasks:
        assert task.output_uri in shards
        assert f"task_type={task.task_type}/" in unquote(task.output_uri)
        assert task.output_line is not None
        assert json.loads(shards[task.output_uri][task.output_line - 1])["task_id"] == task.id
    lines = [json.loads(line) for content in shards.values() for line in content]
    assert sorted(line["task_id"] for line in lines) == sorted(task_ids)
    # Raw results and manifests are archived.
    assert len(list(services.store.list("results/"))) == 6
    assert len(list(services.store.list("manifests/"))) == 6

    # Small outputs are kept inline: a triage label, an extracted date.
    with Session(services.engine) as session:
        triage = session.exec(select(Task).where(col(Task.task_type) == "ticket_triage")).first()
    assert triage is not None
    assert isinstance(triage[0].output_inline, str)

    summary = summarize(services.engine, services.prices)
    assert summary.cost_pusd == provider_cost_pusd(services, emulator)
    assert summary.baseline_pusd > summary.cost_pusd


def test_ingesting_a_batch_twice_changes_nothing(services: Services, emulator: EmulatorServer):
    enqueue_examples(services.engine, per_type=5)
    submit_step(services)
    emulator.advance(3600)
    collect_step(services)
    with Session(services.engine) as session:
        before = sorted((t.id, t.status, t.output_uri, t.output_line) for (t,) in session.exec(select(Task)).all())
        usage_before = session.exec(select(func.count()).select_from(UsageRecord)).one()[0]
        batch_ids = [b.id for (b,) in session.exec(select(Batch)).all()]
    # Force a second ingest of every batch, as a crashed collector's successor would.
    with services.engine.begin() as conn:
        conn.execute(update(Batch).values(status=BatchStatus.ENDED))
    for batch_id in batch_ids:
        assert batch_id is not None
        again = ingest_batch(services, batch_id)
        assert again.outcomes.get("already_recorded", 0) == again.outcomes.get("already_recorded", 0)
    with Session(services.engine) as session:
        after = sorted((t.id, t.status, t.output_uri, t.output_line) for (t,) in session.exec(select(Task)).all())
        usage_after = session.exec(select(func.count()).select_from(UsageRecord)).one()[0]
    assert after == before
    assert usage_after == usage_before


def test_cache_decisions_are_recorded_per_batch(services: Services, emulator: EmulatorServer):
    enqueue_examples(services.engine, per_type=40)
    submit_step(services)
    with Session(services.engine) as session:
        decisions = {b.id: (b.cache_ttl, b.cache_decision) for (b,) in session.exec(select(Batch)).all()}
    # The date-extraction prompt is far below Haiku's 4,096-token minimum: not cached, and said why.
    short = [d for ttl, d in decisions.values() if d and d["prefix_tokens"] < 1000]
    assert short
    assert all(d["ttl"] is None and "minimum" in d["reason"] for d in short)
    # The long triage guide and the policy document are cached (a pilot each, this first time), with a
    # positive expected saving and the hit rate it assumed.
    cached = [d for ttl, d in decisions.values() if ttl is not None]
    assert len(cached) == 2
    assert all(d["option"] == "pilot_1h" and d["role"] == "pilot" for d in cached)
    assert all(Decimal(d["expected_saving_usd"]) > 0 and 0 < d["hit_rate"] <= 1 for d in cached)
