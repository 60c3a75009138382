"""A worker killed in the middle of submit or ingest loses nothing and pays nothing twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session, col

from nightbatch.build.requests import RequestBuilder
from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Batch, BatchStatus, Task, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.errors import RetryableProviderError
from nightbatch.queue.claim import claim
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore
from nightbatch.submit.pack import pack
from nightbatch.submit.plan import plan_requests
from nightbatch.submit.reconcile import reconcile_pending
from nightbatch.submit.step import submit_step
from nightbatch.submit.submitter import archive_manifest, write_pending
from tests.pipeline.conftest import enqueue_examples, make_services


def statuses(services: Services) -> Counter[str]:
    with services.engine.connect() as conn:
        return Counter({str(s): n for s, n in conn.execute(select(Task.status, func.count()).group_by(Task.status))})


def billed(services: Services) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one())


def expire_leases(services: Services) -> None:
    """Make every lease look older than the lease time, as if the worker died long ago."""
    old = datetime.now(UTC) - timedelta(hours=2)
    with services.engine.begin() as conn:
        conn.execute(update(Batch).where(col(Batch.claimed_at).is_not(None)).values(claimed_at=old))
        conn.execute(update(Task).where(col(Task.claimed_at).is_not(None)).values(claimed_at=old))


def crash_before_recording(services: Services, *, call_create: bool) -> str | None:
    """Steps 1-3 of a submit, then "die": the provider id is never recorded."""
    claimed = claim(services.engine, 100, services.worker)
    plan = plan_requests(claimed, services.registry, RequestBuilder())
    packed = pack(plan.requests, lambda key, members: None).batches[0]
    batch_id = write_pending(services.engine, packed, worker=services.worker, run_id=None, cache_decision=None)
    assert batch_id is not None
    archive_manifest(services.engine, services.store, batch_id, packed)
    if not call_create:
        return None
    return services.client.create_batch(packed.entries()).id


def drain(services: Services, emulator: EmulatorServer, rounds: int = 4) -> None:
    for _ in range(rounds):
        submit_step(services)
        emulator.advance(3600)
        collect_step(services)


def test_killed_after_create_before_recording_is_proven_ours_adopted_and_nothing_is_paid_twice(
    services: Services, emulator: EmulatorServer
):
    # Issue 15, item 1: an unrecorded batch is never canceled on a guess. While it runs, its row waits;
    # once it ended, its custom_ids prove it is this row's, and it is adopted and ingested like any other.
    enqueue_examples(services.engine, per_type=3)  # 12 tasks; only the first type's batch is created
    orphan = crash_before_recording(services, call_create=True)
    expire_leases(services)
    successor = make_services(services.engine, services.store, emulator.base_url, worker="worker-b")
    report = submit_step(successor)
    assert any("still running could be its create; waiting" in line for line in report.reconciled)
    emulator.advance(3600)
    report = submit_step(successor)
    assert any(orphan in line and "not recorded" in line for line in report.reconciled)
    with Session(services.engine) as session:
        recovered = session.exec(select(Batch).where(col(Batch.provider_batch_id) == orphan)).one()[0]
    assert recovered.error
    assert "proven ours" in recovered.error
    drain(successor, emulator)
    assert statuses(services) == {"succeeded": 12}
    # Every billed response is in our ledger, once: the adopted batch's results were ingested, not re-sent.
    assert billed(services) == len(emulator.ledger) == 12


def test_killed_before_create_requeues_the_tasks(services: Services, emulator: EmulatorServer):
    enqueue_examples(services.engine, per_type=3)
    crash_before_recording(services, call_create=False)
    expire_leases(services)
    outcomes = reconcile_pending(services.engine, services.client, worker="worker-b", lease_seconds=60)
    assert [o.found for o in outcomes] == [None]
    with Session(services.engine) as session:
        assert session.exec(select(Batch)).one()[0].status == BatchStatus.CREATE_FAILED
    drain(services, emulator)
    assert statuses(services) == {"succeeded": 12}
    assert billed(services) == len(emulator.ledger) == 12


def test_a_refused_create_puts_tasks_back_and_says_so(services: Services, emulator: EmulatorServer):
    enqueue_examples(services.engine, per_type=3)
    emulator.faults.fail("batch_create", "rate_limit_error", times=1, retry_after=1)
    with pytest.raises(RetryableProviderError, match="429"):
        submit_step(services)
    assert statuses(services) == {"queued": 12}
    with services.engine.connect() as conn:
        assert conn.execute(select(func.max(Task.attempts))).scalar_one() == 0  # the failed claim is given back
    drain(services, emulator)
    assert statuses(services) == {"succeeded": 12}


def test_a_create_that_times_out_is_reconciled_not_resent(services: Services, emulator: EmulatorServer):
    enqueue_examples(services.engine, per_type=3)
    # The connection drops after the emulator created the batch: the outcome is unknown to us.
    emulator.faults.drop("batch_create", times=1)
    report = submit_step(services)
    assert any(b.provider_batch_id is None and b.status == BatchStatus.PENDING for b in report.batches)
    expire_leases(services)
    drain(services, emulator)
    assert statuses(services) == {"succeeded": 12}
    assert billed(services) == len(emulator.ledger) == 12


class _CrashOnShardPublish(LocalObjectStore):
    """A real local store that dies once while publishing an output shard (a crash mid-ingest)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.crashed = False

    @contextmanager
    def writer(self, key: str, content_type: str | None = None) -> Iterator[BinaryIO]:
        with super().writer(key, content_type) as out:
            yield out
            if key.startswith("outputs/") and not self.crashed:
                self.crashed = True
                raise KeyboardInterrupt("worker killed while publishing a shard")


def test_killed_mid_ingest_the_next_collector_finishes_it(services: Services, emulator: EmulatorServer, tmp_path):
    store = _CrashOnShardPublish(tmp_path / "crashy")
    dying = make_services(services.engine, store, emulator.base_url)
    enqueue_examples(services.engine, per_type=3)
    submit_step(dying)
    emulator.advance(3600)
    with pytest.raises(KeyboardInterrupt):
        collect_step(dying)
    assert billed(services) == 0  # the transaction never committed
    expire_leases(services)
    successor = make_services(services.engine, store, emulator.base_url, worker="worker-b")
    collect_step(successor)
    assert statuses(services) == {"succeeded": 12}
    assert billed(services) == len(emulator.ledger) == 12


def test_a_dropped_results_download_is_retried_by_the_next_collect(services: Services, emulator: EmulatorServer):
    enqueue_examples(services.engine, per_type=3)
    submit_step(services)
    emulator.advance(3600)
    emulator.faults.drop("batch_results", after_lines=1, times=1)
    first = collect_step(services)
    assert first.errors
    assert "will retry" in first.errors[0]
    second = collect_step(services)
    assert len(first.ingested) + len(second.ingested) == 4
    assert statuses(services) == {"succeeded": 12}
