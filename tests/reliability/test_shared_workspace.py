"""Two installations on one API workspace never touch each other's batches (issue 15, item 1).

Two databases, one emulator (one workspace). Each side crashes once around create; each reconciler must
act only on batches whose custom_ids prove them its own: no cancel, no adoption, no ingest, no bill of
the other's, which is named once as an unknown batch in this workspace.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update
from sqlmodel import col

from nightbatch import custom_ids
from nightbatch.build.requests import RequestBuilder
from nightbatch.collect.poll import collect_step
from nightbatch.db import make_engine, upgrade
from nightbatch.db.installation import installation_id
from nightbatch.db.models import Batch, Task, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.claim import claim
from nightbatch.queue.enqueue import enqueue
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore
from nightbatch.submit.pack import pack
from nightbatch.submit.plan import plan_requests
from nightbatch.submit.step import submit_step
from nightbatch.submit.submitter import archive_manifest, write_pending
from tests.fixtures.services import make_services


@pytest.fixture
def other_engine(empty_db_url: str) -> Iterator[Engine]:
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    yield engine
    engine.dispose()


def _enqueue(engine: Engine, tag: str, n: int = 3) -> None:
    for i in range(n):
        enqueue(engine, "date_extraction", {"text": f"{tag}: paid on 2024-03-{i + 1:02d}."})


def _crash_around_create(services: Services, *, call_create: bool) -> str | None:
    """Claim, write the pending row and the manifest, maybe create, then die before recording."""
    claimed = claim(services.engine, 100, services.worker)
    packed = pack(plan_requests(claimed, services.registry, RequestBuilder()).requests, lambda k, m: None).batches[0]
    row = write_pending(services.engine, packed, worker=services.worker, run_id=None, cache_decision=None)
    assert row is not None
    archive_manifest(services.engine, services.store, row, packed)
    created = services.client.create_batch(packed) if call_create else None
    old = datetime.now(UTC) - timedelta(hours=2)  # the worker died long ago: every lease lapsed
    with services.engine.begin() as conn:
        conn.execute(update(Batch).where(col(Batch.claimed_at).is_not(None)).values(claimed_at=old))
        conn.execute(update(Task).where(col(Task.claimed_at).is_not(None)).values(claimed_at=old))
    return created.id if created else None


def _recorded(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(select(Batch.provider_batch_id).where(col(Batch.provider_batch_id).is_not(None))).scalars()
        )


def _billed(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one())


def test_two_installations_on_one_workspace(
    engine: Engine, other_engine: Engine, emulator: EmulatorServer, tmp_path: Path
):
    a = make_services(engine, LocalObjectStore(tmp_path / "a"), emulator.base_url, worker="a-1")
    b = make_services(other_engine, LocalObjectStore(tmp_path / "b"), emulator.base_url, worker="b-1")
    assert installation_id(engine) != installation_id(other_engine)
    _enqueue(a.engine, "a")
    _enqueue(b.engine, "b")

    # B sends a normal batch of the same size as A's; A's worker dies between create and record.
    b_report = submit_step(b)
    [b_batch] = [o.provider_batch_id for o in b_report.batches]
    assert b_batch is not None
    a_batch = _crash_around_create(a, call_create=True)
    assert a_batch is not None

    # A's successor: both unrecorded-by-A batches still run; neither is provably A's yet. Nothing is canceled.
    a_next = make_services(engine, a.store, emulator.base_url, worker="a-2")
    report = submit_step(a_next)
    assert any("waiting for it to end" in line for line in report.reconciled)
    for batch_id in (a_batch, b_batch):
        assert a_next.client.retrieve_batch(batch_id).processing_status == "in_progress"
    assert _recorded(engine) == set()

    # Once ended, A's results prove A's batch (adopted); B's batch is named once and left alone.
    emulator.advance(3600)
    report = submit_step(a_next)
    assert any(a_batch in line and "not recorded" in line for line in report.reconciled)
    unknown = [line for line in report.reconciled if "unknown batches in this workspace" in line]
    assert len(unknown) == 1
    assert b_batch in unknown[0]
    assert not any("unknown batches" in line for line in submit_step(a_next).reconciled)  # once
    collect_step(a_next)
    collect_step(b)
    assert _recorded(engine) == {a_batch}
    assert _recorded(other_engine) == {b_batch}
    assert (_billed(engine), _billed(other_engine)) == (3, 3)

    # B crashes *before* create while A has a running batch of the same size: B waits, never cancels it,
    # and once A's batch has ended B gives its own row up without touching A's.
    _enqueue(b.engine, "b2")
    _enqueue(a.engine, "a2")
    [a_running] = [o.provider_batch_id for o in submit_step(a_next).batches]
    assert a_running is not None
    assert _crash_around_create(b, call_create=False) is None
    b_next = make_services(other_engine, b.store, emulator.base_url, worker="b-2")
    report = submit_step(b_next)
    assert any("waiting for it to end" in line for line in report.reconciled)
    assert b_next.client.retrieve_batch(a_running).processing_status == "in_progress"
    emulator.advance(3600)
    report = submit_step(b_next)
    assert any("create never took effect" in line for line in report.reconciled)
    assert b_next.client.retrieve_batch(a_running).counts.canceled == 0
    for side in (a_next, b_next):
        for _ in range(2):
            collect_step(side)
            submit_step(side)
            emulator.advance(3600)
        collect_step(side)
    assert a_running in _recorded(engine)
    assert not (_recorded(engine) & _recorded(other_engine))
    # Each ledger holds exactly its own bills; together they are everything the workspace was billed.
    assert _billed(engine) == 6
    assert _billed(other_engine) == 6
    assert _billed(engine) + _billed(other_engine) == len(emulator.ledger)
    with other_engine.connect() as conn:
        statuses = set(conn.execute(select(Task.status)).scalars())
    assert statuses == {"succeeded"}


def test_custom_ids_carry_row_and_installation_within_the_api_rule():
    import re

    built = custom_ids.build(custom_ids.Kind.TASK, 10**12 - 1, 999, row=10**10 - 1, installation="abcdefghij")
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", built)
    parsed = custom_ids.parse(built)
    assert parsed == custom_ids.CustomId(custom_ids.Kind.TASK, 10**12 - 1, 999, 10**10 - 1, "abcdefghij")
    assert parsed.belongs_to("abcdefghij")
    assert not parsed.belongs_to("0123456789")
    unbound = custom_ids.build(custom_ids.Kind.SHADOW, 5, 1)
    assert len(custom_ids.bind(unbound, row=42, installation="abcdefghij")) == len(unbound)
    assert custom_ids.parse("t5-1") == custom_ids.CustomId(custom_ids.Kind.TASK, 5, 1)  # older ids still parse
    assert custom_ids.parse("someone-else's") is None
