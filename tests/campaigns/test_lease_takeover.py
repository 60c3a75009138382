"""A worker dies between ``create`` and recording it; its tasks' lease lapses before its batch row's.

Tasks are claimed (``claimed_at = t0``) before their pending batch row is written (``claimed_at = t0 + δ``,
δ = planning, token counting and the creates of the batches before it: minutes for a large claim). In
between the two lease expiries, ``claim()`` hands the tasks, still linked to the pending batch, to another
worker, which sends them again. When the pending row is reconciled, the orphan batch is recorded but none
of its tasks point at it any more: its billed results are "unknown custom_ids", paid twice and missing
from the cost ledger.
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
from nightbatch.submit.step import submit_step
from nightbatch.submit.submitter import archive_manifest, write_pending
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
