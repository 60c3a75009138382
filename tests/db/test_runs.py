"""Run rows in the database port: start, heartbeat, finish, close as interrupted (compare-and-set), and
which interrupted runs a run's report takes in."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select, update

from nightbatch.db.models import Run, RunStatus, utcnow
from nightbatch.db.runs import (
    close_interrupted,
    finish_run,
    heartbeat,
    interrupted_before,
    running_runs,
    start_run,
)


def _run(engine: Engine, run_id: int) -> Run:
    with engine.connect() as conn:
        return conn.execute(select(Run).where(Run.id == run_id)).one()  # type: ignore[return-value]


def test_a_run_starts_beats_and_finishes(engine: Engine) -> None:
    run_id = start_run(engine, "nightly", {"limit": 5}, hostname="host-a", pid=123)
    [running] = running_runs(engine)
    assert (running.id, running.kind, running.hostname, running.pid) == (run_id, "nightly", "host-a", 123)
    assert running.heartbeat_at is not None
    with engine.begin() as conn:
        conn.execute(update(Run).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    heartbeat(engine, run_id)
    assert running_runs(engine)[0].heartbeat_at > utcnow() - timedelta(minutes=1)  # type: ignore[operator]
    finish_run(engine, run_id, RunStatus.SUCCEEDED, {"submitted": 5})
    row = _run(engine, run_id)
    assert (row.status, row.totals, row.parameters) == (RunStatus.SUCCEEDED, {"submitted": 5}, {"limit": 5})
    assert row.ended_at is not None
    assert running_runs(engine) == []


def test_closing_an_interrupted_run_is_compare_and_set(engine: Engine) -> None:
    run_id = start_run(engine, "nightly", {}, hostname="h", pid=1)
    now = utcnow()
    assert close_interrupted(engine, run_id, "its process 1 on h is gone", now=now) is True
    assert close_interrupted(engine, run_id, "again", now=now) is False  # a second closer changes nothing
    row = _run(engine, run_id)
    assert (row.status, row.totals) == (RunStatus.INTERRUPTED, {"interrupted": "its process 1 on h is gone"})
    heartbeat(engine, run_id)  # a late beat from the dead run does not revive it
    assert _run(engine, run_id).status == RunStatus.INTERRUPTED


def test_a_report_takes_in_the_interrupted_runs_just_before(engine: Engine) -> None:
    ids = [start_run(engine, "nightly", {}, hostname="h", pid=n) for n in range(4)]
    finish_run(engine, ids[0], RunStatus.SUCCEEDED, {})
    for run_id in ids[1:3]:
        close_interrupted(engine, run_id, "gone", now=utcnow())
    assert interrupted_before(engine, ids[3]) == ids[1:3]
    assert interrupted_before(engine, ids[0]) == []
    assert interrupted_before(engine, 999) == []
