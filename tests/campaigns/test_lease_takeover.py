"""Leases that lapse around ``create``: another worker takes over while the first is dead or paused.

1. A worker dies between ``create`` and recording it. Its tasks were claimed before their pending batch
   row was written; if their lease lapsed first, ``claim()`` would hand them, still linked to the pending
   batch, to another worker, which would send them again (paid twice, once outside the ledger). Fixed:
   linking a task to its batch row renews its lease.
2. A worker is paused (GC, a suspended VM) after its create landed and before recording it; a reconciler
   adopts the batch meanwhile. When the worker resumes, its batch must not be recorded a second time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlmodel import col

from nightbatch.build.requests import RequestBuilder
from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Batch, Task, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.claim import claim
from nightbatch.services import Services
from nightbatch.submit.pack import pack
from nightbatch.submit.plan import plan_requests
from nightbatch.submit.reconcile import reconcile_pending
from nightbatch.submit.step import submit_step
from nightbatch.submit.submitter import archive_manifest, record_created, record_orphan, write_pending
from tests.campaigns.harness import finish
from tests.pipeline.conftest import enqueue_examples, make_services


def lapse(services: Services, table: type[Task] | type[Batch]) -> None:
    old = datetime.now(UTC) - timedelta(seconds=services.settings.lease_seconds + 1)
    with services.engine.begin() as conn:
        conn.execute(update(table).where(col(table.claimed_at).is_not(None)).values(claimed_at=old))


def test_tasks_of_an_unrecorded_batch_are_not_sent_again(services: Services, emulator: EmulatorServer):
    enqueue_examples(services.engine, per_type=3)
    claimed = claim(services.engine, 100, services.worker)
    packed = pack(plan_requests(claimed, services.registry, RequestBuilder()).requests, lambda k, m: None).batches[0]
    batch_id = write_pending(services.engine, packed, worker=services.worker, run_id=None, cache_decision=None)
    assert batch_id is not None
    archive_manifest(services.engine, services.store, batch_id, packed)
    services.client.create_batch(packed.entries())  # ... and the worker dies before record_created
    lapse(services, Task)  # the tasks were claimed first, so their lease lapses first
    successor = make_services(services.engine, services.store, emulator.base_url, worker="worker-b")
    submit_step(successor)
    emulator.advance(3600)  # the provider runs the orphan meanwhile
    lapse(services, Batch)
    for _ in range(3):
        submit_step(successor)
        emulator.advance(3600)
        collect_step(successor)
    with services.engine.connect() as conn:
        ours = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
    sent = [e.custom_id.split("-")[0] for e in emulator.ledger.entries() if e.custom_id]
    assert sorted(set(sent)) == sorted(sent), "a task was sent (and billed) in two batches"
    assert ours == len(emulator.ledger), "the provider billed results that are not in our cost ledger"


def test_a_create_answered_after_a_reconciler_adopted_its_batch_is_not_recorded_twice(
    services: Services, emulator: EmulatorServer
):
    """The create lands but its worker is paused (GC, a suspended VM) past its lease before it records it."""
    enqueue_examples(services.engine, per_type=3)
    claimed = claim(services.engine, 100, services.worker)
    packed = pack(plan_requests(claimed, services.registry, RequestBuilder()).requests, lambda k, m: None).batches[0]
    batch_id = write_pending(services.engine, packed, worker=services.worker, run_id=None, cache_decision=None)
    assert batch_id is not None
    archive_manifest(services.engine, services.store, batch_id, packed)
    created = services.client.create_batch(packed.entries())  # at the provider; the answer is on its way
    lapse(services, Task)
    lapse(services, Batch)
    emulator.advance(3600)  # issue 15: only an ended batch's results can prove it ours, so adoption waits for it
    adopted = reconcile_pending(services.engine, services.client, worker="worker-b", lease_seconds=60)
    assert [o.found.id for o in adopted if o.found] == [created.id]
    # The answer arrives: submit_batch goes on exactly as it does after create_batch returns.
    assert not record_created(services.engine, batch_id, created, worker=services.worker)
    record_orphan(services.engine, services.client, created, model=packed.model, reason="late answer")
    finish(services, emulator)
    with services.engine.connect() as conn:
        rows = conn.execute(select(func.count()).where(col(Batch.provider_batch_id) == created.id)).scalar_one()
    assert rows == 1
