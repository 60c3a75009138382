"""Ingest across many chunks: the pipelined writes (a thread on PostgreSQL) lose, repeat and reorder nothing."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from nightbatch.collect import ingest
from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Task, TaskAttempt, TaskStatus, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from nightbatch.storage import read_uri
from nightbatch.submit.step import submit_step
from tests.pipeline.conftest import enqueue_examples, without_caching


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "CHUNK", 3)  # a dozen tasks per batch: every boundary case is a few chunks away


@pytest.fixture(autouse=True)
def _caching_off(request: pytest.FixtureRequest) -> None:
    """These tests are not about caching: one submit sends every task (no pilot waits; see test_pilot.py)."""
    for name in ("services", "local_services"):
        if name in request.fixturenames:
            without_caching(request.getfixturevalue(name))


def _counts(services: Services) -> tuple[Counter[str], int, int]:
    with services.engine.connect() as conn:
        statuses = Counter(
            {str(s): n for s, n in conn.execute(select(Task.status, func.count()).group_by(Task.status))}
        )
        usage = int(conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one())
        attempts = int(conn.execute(select(func.count()).select_from(TaskAttempt)).scalar_one())
    return statuses, usage, attempts


def test_every_result_of_many_chunks_is_recorded_once(local_services: Services, emulator: EmulatorServer):
    enqueue_examples(local_services.engine, per_type=10)
    submit_step(local_services)
    emulator.advance(3600)
    report = collect_step(local_services)
    assert not report.errors
    statuses, usage, attempts = _counts(local_services)
    assert statuses == {"succeeded": 40}
    assert usage == attempts == len(emulator.ledger) >= 40  # and any shadow (quality-sampling) requests
    # Each task points at its own shard line, whatever order its chunk's rows were written in.
    with local_services.engine.connect() as conn:
        tasks = conn.execute(select(col(Task.id), col(Task.output_uri), col(Task.output_line))).all()
    shards = {uri: read_uri(uri).splitlines() for uri in {t.output_uri for t in tasks}}
    for task_id, uri, line in tasks:
        assert f'"task_id":{task_id},' in shards[uri][line - 1].decode()


def test_a_result_repeated_across_a_chunk_boundary_counts_once(local_services: Services, emulator: EmulatorServer):
    ids = enqueue_examples(local_services.engine, per_type=4)
    emulator.faults.malform_results("duplicate", custom_ids={f"t{task_id}-1" for task_id in ids})
    submit_step(local_services)
    emulator.advance(3600)
    # Every result comes twice in a row: with 4 per batch and chunks of 3, [a a b] [b c c] [d d] puts b's
    # second line in the next chunk, decided before b's rows are written (they are in flight).
    reports = collect_step(local_services).ingested
    statuses, usage, attempts = _counts(local_services)
    assert statuses == {"succeeded": 16}
    assert usage == attempts == len(emulator.ledger)  # each duplicate line was reported, not booked
    bad = [line for r in reports for line in r.bad_lines]
    assert len(bad) == 16
    assert all("duplicate result line" in line for line in bad)
    emulator.faults.clear()


def test_a_second_ingest_over_many_chunks_changes_nothing(local_services: Services, emulator: EmulatorServer):
    from sqlalchemy import update

    from nightbatch.db.models import Batch, BatchStatus

    enqueue_examples(local_services.engine, per_type=6)
    submit_step(local_services)
    emulator.advance(3600)
    collect_step(local_services)
    before = _counts(local_services)
    with local_services.engine.begin() as conn:
        conn.execute(update(Batch).values(status=BatchStatus.ENDED))
        batch_ids = [b for (b,) in conn.execute(select(col(Batch.id)))]
    for batch_id in batch_ids:
        again = ingest.ingest_batch(local_services, batch_id)
        assert set(again.outcomes) <= {"already_recorded"}
    assert _counts(local_services) == before
    assert before[0] == {TaskStatus.SUCCEEDED.value: 24}
