"""Attempts count requests sent, not claims; a task that keeps killing workers is failed as poison (item 5)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from nightbatch.db.models import Task, utcnow
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.claim import claim, release
from nightbatch.queue.enqueue import enqueue
from nightbatch.storage import LocalObjectStore
from nightbatch.submit.step import submit_step
from tests.fixtures.services import make_services

LEASE = 60  # make_services' lease


def _rows(engine: Engine) -> list[tuple[str, int, int, str | None]]:
    with engine.connect() as conn:
        return [
            (str(r.status), r.attempts, r.claims, r.error_type)
            for r in conn.execute(select(Task.status, Task.attempts, Task.claims, Task.error_type).order_by(Task.id))
        ]


def _enqueue(engine: Engine, n: int) -> None:
    for i in range(n):
        enqueue(engine, "date_extraction", {"text": f"Paid on 2024-03-{i + 1:02d}."})


def _die_holding(engine: Engine, worker: str, minutes_ago: int) -> None:
    """A worker claims everything and dies: its lease lapsed ``minutes_ago`` minutes ago."""
    assert claim(engine, 100, worker, now=utcnow() - timedelta(minutes=minutes_ago), lease_seconds=LEASE)


def test_worker_deaths_before_sending_burn_no_attempt(engine: Engine, emulator: EmulatorServer, tmp_path: Path):
    _enqueue(engine, 5)
    _die_holding(engine, "dead-1", 10)
    _die_holding(engine, "dead-2", 5)
    assert {r[:3] for r in _rows(engine)} == {("claimed", 0, 2)}
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    report = submit_step(services)
    assert report.submitted_tasks == 5
    # One request went out per task: one attempt each, and the count of dead claims starts over.
    assert {r[:3] for r in _rows(engine)} == {("submitted", 1, 0)}


def test_a_task_that_keeps_killing_workers_fails_as_poison(engine: Engine, emulator: EmulatorServer, tmp_path: Path):
    _enqueue(engine, 2)
    for n, ago in enumerate((40, 30, 20)):
        _die_holding(engine, f"dead-{n}", ago)
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    assert services.settings.poison_claims == 3
    report = submit_step(services)
    assert report.claimed == 0
    assert _rows(engine) == [("failed", 0, 4, "poison"), ("failed", 0, 4, "poison")]
    with engine.connect() as conn:
        message = conn.execute(select(Task.error_message)).scalars().first()
    assert "claimed 3 times without its request ever being sent" in (message or "")


def test_a_release_burns_no_attempt_and_no_claim(engine: Engine):
    _enqueue(engine, 3)
    for _ in range(5):  # e.g. tasks handed back to wait for a cache pilot, round after round
        held = [t.id for t in claim(engine, 10, "alive")]
        assert release(engine, held, "alive") == held
    assert {r[:3] for r in _rows(engine)} == {("queued", 0, 0)}
    assert len(claim(engine, 10, "alive")) == 3  # never poison


def test_a_dead_workers_pending_row_given_up_counts_its_claim_not_an_attempt(
    engine: Engine, emulator: EmulatorServer, tmp_path: Path
):
    """Crash between linking the tasks to a pending row and create: the reconciler re-queues them."""
    from nightbatch.build.requests import RequestBuilder
    from nightbatch.submit.pack import pack
    from nightbatch.submit.plan import plan_requests
    from nightbatch.submit.submitter import write_pending

    _enqueue(engine, 3)
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url, worker="dead")
    claimed = claim(engine, 10, "dead", now=utcnow() - timedelta(minutes=10), lease_seconds=LEASE)
    plan = plan_requests(claimed, services.registry, RequestBuilder())
    [packed] = pack(plan.requests, lambda key, members: None).batches
    assert write_pending(engine, packed, worker="dead", run_id=None, cache_decision=None) is not None
    with engine.begin() as conn:  # the row's lease lapsed with its worker
        conn.execute(
            Task.__table__.update().values(claimed_at=utcnow() - timedelta(minutes=10))  # type: ignore[attr-defined]
        )
        from nightbatch.db.models import Batch

        conn.execute(Batch.__table__.update().values(claimed_at=utcnow() - timedelta(minutes=10)))  # type: ignore[attr-defined]
    healthy = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    report = submit_step(healthy)
    assert report.reconciled
    assert report.submitted_tasks == 3
    assert {r[:3] for r in _rows(engine)} == {("submitted", 1, 0)}
