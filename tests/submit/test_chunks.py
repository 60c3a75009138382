"""Bounded submitting (issue 20): claims a piece at a time as building consumes them, a large limit in chunks."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import func, select

from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Task
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.claim import ClaimedTask
from nightbatch.services import Services
from nightbatch.submit.bounded import ClaimedPieces, drain
from nightbatch.submit.chunks import submit_in_chunks
from tests.pipeline.conftest import enqueue_examples, without_caching


def _fake_queue(size: int) -> tuple[list[int], Any]:
    """A queue of ``size`` task ids and a claim function that records how many each call asked for."""
    queue = list(range(1, size + 1))
    asked: list[int] = []

    def claim_some(n: int) -> list[ClaimedTask]:
        asked.append(n)
        taken, queue[:] = queue[:n], queue[n:]
        return [cast(ClaimedTask, SimpleNamespace(id=i)) for i in taken]

    return asked, claim_some


def test_pieces_are_claimed_only_as_the_previous_one_is_consumed():
    asked, claim_some = _fake_queue(100)
    pieces = ClaimedPieces(claim_some, limit=25, piece=10)
    assert asked == [10]  # the first piece at once: an empty queue is known before anything is built
    seen = []
    for task in pieces:
        seen.append(task.id)
        assert len(asked) == (len(seen) - 1) // 10 + 1  # never a piece ahead of what was consumed
    assert seen == list(range(1, 26))
    assert asked == [10, 10, 5]
    assert pieces.ids == seen


def test_a_short_piece_means_the_queue_is_drained():
    asked, claim_some = _fake_queue(13)
    assert [t.id for t in ClaimedPieces(claim_some, limit=100, piece=10)] == list(range(1, 14))
    assert asked == [10, 10]


def test_drain_lets_go_of_each_item_as_it_is_handed_on():
    items = [1, 2, 3]
    handed = []
    for item in drain(items):
        handed.append((item, len(items)))
    assert handed == [(1, 2), (2, 1), (3, 0)]


def _statuses(services: Services) -> Counter[str]:
    with services.engine.connect() as conn:
        return Counter({str(s): n for s, n in conn.execute(select(Task.status, func.count()).group_by(Task.status))})


def test_a_large_limit_goes_out_in_chunks_each_task_once(local_services: Services, emulator: EmulatorServer):
    services = without_caching(local_services)
    task_ids = enqueue_examples(services.engine, per_type=5)
    report = submit_in_chunks(services, limit=100, chunk=6)
    assert report.claimed == report.submitted_tasks == len(task_ids) == 20
    # Chunks of at most 6 tasks: no batch holds more, and every task went out in exactly one batch.
    assert len(report.batches) >= 4
    sent = Counter(t for outcome in report.batches for t in outcome.task_ids)
    assert sorted(sent) == sorted(task_ids)
    assert set(sent.values()) == {1}
    assert max(len(outcome.task_ids) for outcome in report.batches) <= 6
    emulator.advance(600)
    collect_step(services)
    assert _statuses(services) == {"succeeded": 20}


def test_chunks_stop_when_tasks_wait_for_their_groups_pilot(local_services: Services):
    enqueue_examples(local_services.engine, per_type=5)
    report = submit_in_chunks(local_services, limit=100, chunk=50)
    # The cached groups send one-task pilots and their other tasks wait queued: claiming another chunk
    # would only claim and hand back the same waiting tasks.
    assert report.pilots == 2
    assert report.waiting_tasks == 8
    assert report.claimed == report.submitted_tasks + report.waiting_tasks
    assert _statuses(local_services)["queued"] == 8
