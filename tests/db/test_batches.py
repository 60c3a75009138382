"""The batch row's state machine (nightbatch.db.batches, nightbatch.db.pending_batches): each transition and
its guard, on both databases."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlmodel import col

from nightbatch.claude import BatchInfo, RequestCounts
from nightbatch.db import batches, pending_batches
from nightbatch.db.models import Batch, BatchStatus, CacheRole, Task, TaskStatus, UsagePurpose
from nightbatch.db.pending_batches import PendingBatch, PendingRequest
from nightbatch.db.task_claims import fail_claimed, queued_outside
from nightbatch.db.task_links import hand_over_claims
from nightbatch.queue.claim import claim
from nightbatch.queue.enqueue import enqueue
from nightbatch.submit.plan import BuildFailure

WORKER = "worker-a"
_serial = itertools.count()
LEASE = 60


def _now() -> datetime:
    return datetime.now(UTC)


def _claimed(engine: Engine, n: int, worker: str = WORKER, task_type: str = "date_extraction") -> list[int]:
    for _ in range(n):
        enqueue(engine, task_type, {"text": f"task {next(_serial)}"})
    return [t.id for t in claim(engine, n, worker)]


def _pending(engine: Engine, task_ids: Sequence[int | None], *, worker: str = WORKER, **row: Any) -> int | None:
    """A pending row whose requests link ``task_ids`` (None: a request that links no task)."""
    fields: dict[str, Any] = {"model": "claude-x", "prefix_hash": "p" * 8, "worker": worker, **row}

    def bind(batch_id: int) -> list[PendingRequest]:
        return [PendingRequest(f"t{t or 0}-1-{batch_id:010d}-abcdefghij", "claude-x", t) for t in task_ids]

    return pending_batches.insert_pending(
        engine, PendingBatch(**fields), now=_now(), bind=bind, payload_bytes=lambda kept: 100 * len(kept)
    )


def _info(provider_id: str = "msgbatch_1", status: str = "in_progress", **counts: int) -> BatchInfo:
    created = _now()
    return BatchInfo(provider_id, status, RequestCounts(**counts), created, created + timedelta(hours=24), None, None)


def _batch(engine: Engine, batch_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(Batch).where(col(Batch.id) == batch_id)).one()


def _tasks(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Task).order_by(col(Task.id))).all())


def _age_lease(engine: Engine, batch_id: int, seconds: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Batch).where(col(Batch.id) == batch_id).values(claimed_at=_now() - timedelta(seconds=seconds))
        )


# -- insert_pending ---------------------------------------------------------------------------------


def test_insert_pending_writes_a_leased_row_and_links_its_tasks(engine: Engine):
    ids = _claimed(engine, 2)
    batch_id = _pending(engine, [*ids, None], run_id=None)
    assert batch_id is not None
    row = _batch(engine, batch_id)
    assert (row.status, row.claimed_by, row.request_count, row.processing_count, row.payload_bytes) == (
        BatchStatus.PENDING, WORKER, 3, 3, 300)  # fmt: skip
    assert [(t.status, t.batch_id, t.custom_id) for t in _tasks(engine)] == [
        (TaskStatus.CLAIMED, batch_id, f"t{i}-1-{batch_id:010d}-abcdefghij") for i in ids
    ]


def test_insert_pending_leaves_out_a_task_whose_claim_was_lost(engine: Engine):
    mine = _claimed(engine, 1)
    theirs = _claimed(engine, 1, worker="worker-b")
    kept: list[Sequence[int]] = []

    def size(positions: Sequence[int]) -> int:
        kept.append(positions)
        return 42

    bind = lambda b: [PendingRequest(f"t{t}-1-{b:010d}-abcdefghij", "m", t) for t in [*mine, *theirs]]  # noqa: E731
    pending = PendingBatch(model="m", prefix_hash="h", worker=WORKER)
    batch_id = pending_batches.insert_pending(engine, pending, now=_now(), bind=bind, payload_bytes=size)
    assert batch_id is not None
    assert kept == [[0]]
    assert _batch(engine, batch_id).request_count == 1
    assert [t.batch_id for t in _tasks(engine)] == [batch_id, None]


def test_insert_pending_writes_nothing_when_every_claim_was_lost(engine: Engine):
    ids = _claimed(engine, 2, worker="worker-b")
    assert _pending(engine, ids) is None
    with engine.connect() as conn:
        assert conn.execute(select(Batch)).all() == []
    assert {t.batch_id for t in _tasks(engine)} == {None}


def test_a_second_pilot_for_one_group_is_not_written(engine: Engine):
    first, second = _claimed(engine, 2)
    pilot = {"cache_role": CacheRole.PILOT, "cache_ttl": "1h", "pilot_prefix_tokens": 2048}
    assert _pending(engine, [first], **pilot) is not None
    assert _pending(engine, [second], **pilot) is None
    assert [t.batch_id is None for t in _tasks(engine)] == [False, True]


# -- the lease compare-and-set --------------------------------------------------------------------


def test_of_two_takers_of_a_lapsed_lease_one_wins(engine: Engine):
    batch_id = _pending(engine, _claimed(engine, 1))
    assert batch_id is not None
    now = _now()
    take = {"status": BatchStatus.PENDING, "lease_seconds": LEASE}
    assert not batches.take_lease(engine, batch_id, "reconciler-1", now=now, **take)  # the submitter's lease is live
    _age_lease(engine, batch_id, LEASE + 1)
    assert batches.take_lease(engine, batch_id, "reconciler-1", now=now, **take)
    assert not batches.take_lease(engine, batch_id, "reconciler-2", now=now, **take)
    assert _batch(engine, batch_id).claimed_by == "reconciler-1"


def test_of_two_concurrent_takers_exactly_one_wins(engine: Engine):
    ids = _claimed(engine, 1)
    batch_id = _pending(engine, ids)
    assert batch_id is not None
    _age_lease(engine, batch_id, LEASE + 1)
    barrier = threading.Barrier(2)
    won: dict[str, bool] = {}

    def taker(worker: str) -> None:
        barrier.wait()
        won[worker] = batches.take_lease(
            engine, batch_id, worker, status=BatchStatus.PENDING, lease_seconds=LEASE, now=_now()
        )

    threads = [threading.Thread(target=taker, args=(w,)) for w in ("taker-1", "taker-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won.values()) == [False, True]
    assert _batch(engine, batch_id).claimed_by == next(w for w, ok in won.items() if ok)


def test_a_lease_is_only_taken_in_the_expected_state_and_released(engine: Engine):
    batch_id = _pending(engine, _claimed(engine, 1))
    assert batch_id is not None
    _age_lease(engine, batch_id, LEASE + 1)
    assert not batches.take_lease(engine, batch_id, "c", status=BatchStatus.ENDED, lease_seconds=LEASE, now=_now())
    batches.release_lease(engine, batch_id)
    row = _batch(engine, batch_id)
    assert (row.claimed_by, row.claimed_at) == (None, None)
    assert batches.take_lease(engine, batch_id, "c", status=BatchStatus.PENDING, lease_seconds=LEASE, now=_now())


# -- record_created, adopt, mark_create_failed --------------------------------------------------------


def test_record_created_needs_the_pending_row_and_its_lease(engine: Engine):
    ids = _claimed(engine, 2)
    batch_id = _pending(engine, ids)
    assert batch_id is not None
    assert not pending_batches.record_created(engine, batch_id, _info(), worker="worker-b")
    assert _batch(engine, batch_id).status == BatchStatus.PENDING
    assert {t.status for t in _tasks(engine)} == {TaskStatus.CLAIMED}
    assert pending_batches.record_created(engine, batch_id, _info(processing=2), worker=WORKER)
    row = _batch(engine, batch_id)
    assert (row.status, row.provider_batch_id, row.claimed_by) == (BatchStatus.IN_PROGRESS, "msgbatch_1", None)
    assert {(t.status, t.attempts, t.claims, t.claimed_by) for t in _tasks(engine)} == {
        (TaskStatus.SUBMITTED, 1, 0, None)
    }
    # not pending any more
    assert not pending_batches.record_created(engine, batch_id, _info("msgbatch_2"), worker=WORKER)
    assert pending_batches.is_recorded(engine, "msgbatch_1")
    assert not pending_batches.is_recorded(engine, "msgbatch_2")
    assert pending_batches.known_provider_ids(engine) == {"msgbatch_1"}


def test_adopt_records_the_batch_under_the_reconcilers_lease_and_says_so(engine: Engine):
    batch_id = _pending(engine, _claimed(engine, 1))
    assert batch_id is not None
    _age_lease(engine, batch_id, LEASE + 1)
    assert batches.take_lease(engine, batch_id, "rec", status=BatchStatus.PENDING, lease_seconds=LEASE, now=_now())
    assert pending_batches.adopt(engine, batch_id, _info(), worker="rec", note="proven ours")
    row = _batch(engine, batch_id)
    assert (row.status, row.error) == (BatchStatus.IN_PROGRESS, "proven ours")


@pytest.mark.parametrize("worker_died", [False, True])
def test_mark_create_failed_puts_the_tasks_back_unharmed(engine: Engine, worker_died: bool):
    ids = _claimed(engine, 2)
    batch_id = _pending(engine, ids)
    assert batch_id is not None
    pending_batches.mark_create_failed(engine, batch_id, "refused " + "x" * 3000, worker_died=worker_died)
    row = _batch(engine, batch_id)
    assert (row.status, row.claimed_by, len(row.error)) == (BatchStatus.CREATE_FAILED, None, 2000)
    assert {(t.status, t.batch_id, t.custom_id, t.attempts, t.claims) for t in _tasks(engine)} == {
        (TaskStatus.QUEUED, None, None, 0, 1 if worker_died else 0)
    }
    assert [r.id for r in pending_batches.given_up_since(engine, _now() - timedelta(hours=1))] == [batch_id]
    assert pending_batches.given_up_since(engine, _now() + timedelta(hours=1)) == []


def test_stale_pending_lists_only_rows_whose_lease_lapsed(engine: Engine):
    fresh = _pending(engine, _claimed(engine, 1))
    stale = _pending(engine, _claimed(engine, 1))
    assert fresh is not None
    assert stale is not None
    _age_lease(engine, stale, LEASE + 1)
    assert [r.id for r in pending_batches.stale_pending(engine, lease_seconds=LEASE, now=_now())] == [stale]


# -- polling, canceling, orphans --------------------------------------------------------------------


def _in_progress(engine: Engine, provider_id: str = "msgbatch_1", **row: Any) -> int:
    batch_id = _pending(engine, _claimed(engine, 1), **row)
    assert batch_id is not None
    assert pending_batches.record_created(engine, batch_id, _info(provider_id), worker=WORKER)
    return batch_id


def test_record_polled_moves_open_rows_only(engine: Engine):
    pending = _pending(engine, _claimed(engine, 1))
    batch_id = _in_progress(engine)
    assert pending is not None
    assert [b.id for b in batches.open_batches(engine)] == [batch_id]
    ended = _info(status="ended", succeeded=1)
    batches.record_polled(engine, pending, ended)
    batches.record_polled(engine, batch_id, ended)
    assert _batch(engine, pending).status == BatchStatus.PENDING
    row = _batch(engine, batch_id)
    assert (row.status, row.succeeded_count, row.processing_count) == (BatchStatus.ENDED, 1, 0)
    assert batches.open_batches(engine) == []
    assert batches.ended_batches(engine) == [batch_id]


def test_ended_calibration_batches_are_not_listed_for_ingest(engine: Engine):
    batch_id = _pending(engine, [None], purpose=UsagePurpose.CALIBRATION)
    assert batch_id is not None
    assert pending_batches.record_created(engine, batch_id, _info(status="ended"), worker=WORKER)
    assert batches.ended_batches(engine) == []


@pytest.mark.parametrize("user", [False, True])
def test_mark_canceling_moves_an_in_progress_row_only(engine: Engine, user: bool):
    batch_id = _in_progress(engine)
    when = _now() if user else None
    batches.mark_canceling(engine, batch_id, "canceled by me", user_canceled_at=when)
    row = _batch(engine, batch_id)
    assert (row.status, row.error) == (BatchStatus.CANCELING, "canceled by me")
    assert {t.user_canceled for t in _tasks(engine)} == {user}
    batches.mark_canceling(engine, batch_id, "again", status=BatchStatus.ENDED)
    row = _batch(engine, batch_id)
    assert (row.status, row.error) == (BatchStatus.CANCELING, "canceled by me")


def test_insert_orphan_records_a_provider_batch_once(engine: Engine):
    info = _info("msgbatch_9", processing=3)
    orphan = pending_batches.insert_orphan(engine, info, model="claude-x", reason="late create")
    assert orphan is not None
    row = _batch(engine, orphan)
    assert (row.purpose, row.status, row.request_count, row.error) == (
        UsagePurpose.ORPHAN, BatchStatus.IN_PROGRESS, 3, "late create")  # fmt: skip
    assert pending_batches.insert_orphan(engine, info, model="claude-x", reason="again") is None


def test_set_manifest_uri(engine: Engine):
    batch_id = _pending(engine, _claimed(engine, 1))
    assert batch_id is not None
    pending_batches.set_manifest_uri(engine, batch_id, "file:///m.jsonl")
    assert _batch(engine, batch_id).manifest_uri == "file:///m.jsonl"


# -- the task side of submitting (nightbatch.db.task_links, nightbatch.db.task_claims) --------------


def test_handing_over_claims_and_failing_claimed_tasks(engine: Engine):
    ids = _claimed(engine, 2)
    batch_id = _pending(engine, ids)
    assert batch_id is not None
    hand_over_claims(engine, batch_id)
    assert {(t.status, t.claims) for t in _tasks(engine)} == {(TaskStatus.CLAIMED, 0)}
    fail_claimed(engine, [BuildFailure(ids[0], "bad_template", "no field 'x'")], WORKER, now=_now())
    assert [(t.status, t.error_type) for t in _tasks(engine)] == [
        (TaskStatus.FAILED, "bad_template"), (TaskStatus.CLAIMED, None)]  # fmt: skip
    fail_claimed(engine, [BuildFailure(ids[0], "other", "again")], WORKER, now=_now())  # not claimed any more
    assert _tasks(engine)[0].error_type == "bad_template"
    fail_claimed(engine, [BuildFailure(ids[1], "other", "not mine")], "another-worker", now=_now())  # not its claim
    assert (_tasks(engine)[1].status, _tasks(engine)[1].error_type) == (TaskStatus.CLAIMED, None)


def test_queued_outside_counts_queued_tasks_of_other_types(engine: Engine):
    for i in range(3):
        enqueue(engine, "date_extraction", {"text": f"d {i}"})
    enqueue(engine, "other_type", {"text": "o"})
    assert queued_outside(engine, {"date_extraction"}) == {"other_type": 1}
    assert queued_outside(engine, {"date_extraction", "other_type"}) == {}
