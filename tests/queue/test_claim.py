"""Claiming: order, leases, release and renewal, and no double claims under concurrent workers."""

from __future__ import annotations

import dataclasses
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session, col, select

from nightbatch.db import Task, TaskStatus
from nightbatch.queue import claim, enqueue, enqueue_jsonl, release, renew_lease

T0 = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)


def _task(engine: Engine, engine_task_id: int) -> Task:
    with Session(engine) as session:
        return session.get_one(Task, engine_task_id)


def _fill(engine: Engine, n: int, task_type: str = "t") -> None:
    enqueue_jsonl(engine, (f'{{"i": {i}}}' for i in range(n)), default_task_type=task_type)


def test_claim_order_is_priority_then_deadline_then_id(engine: Engine) -> None:
    low = enqueue(engine, "t", {"n": "low"}, priority=-1).task_id
    plain = enqueue(engine, "t", {"n": "plain"}).task_id
    late = enqueue(engine, "t", {"n": "late"}, deadline=T0 + timedelta(days=2)).task_id
    enqueue_jsonl(
        engine,
        [
            '{"payload": {"n": "soon"}, "deadline": "2026-11-02T00:00:00+05:00"}',
            '{"payload": {"n": "urgent"}, "priority": 9}',
            '{"n": "plain2"}',
        ],
        default_task_type="t",
    )
    got = claim(engine, 10, "w", now=T0)
    assert [t.payload["n"] for t in got] == ["urgent", "soon", "late", "plain", "plain2", "low"]
    assert {got[2].id, got[3].id, got[5].id} == {late, plain, low}
    # Issue 15, item 5: a claim is not an attempt (attempts count requests sent); it counts in `claims`.
    assert all(t.claimed_by == "w" and t.claimed_at == T0 and t.attempts == 0 for t in got)


def test_claim_takes_at_most_n_and_only_the_asked_types(engine: Engine) -> None:
    _fill(engine, 5, "a")
    _fill(engine, 5, "b")
    assert claim(engine, 0, "w") == []
    assert claim(engine, 3, "w", task_types=[]) == []
    first = claim(engine, 3, "w", task_types=["b"])
    assert len(first) == 3
    assert {t.task_type for t in first} == {"b"}
    assert len(claim(engine, 100, "w", task_types={"b"})) == 2
    assert len(claim(engine, 100, "w")) == 5
    assert claim(engine, 100, "w") == []


def test_claimed_tasks_are_frozen_snapshots(engine: Engine) -> None:
    enqueue(engine, "t", {"a": 1}, key="k", model_override="m")
    [task] = claim(engine, 1, "w")
    assert (task.idempotency_key, task.model_override, task.source) == ("k", "m", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.attempts = 5  # type: ignore[misc]
    db = _task(engine, task.id)
    assert (db.status, db.claimed_by, db.attempts, db.claims) == (TaskStatus.CLAIMED, "w", 0, 1)


def test_an_expired_lease_is_reclaimed(engine: Engine) -> None:
    enqueue(engine, "t", {"a": 1})
    [first] = claim(engine, 1, "dead", now=T0, lease_seconds=900)
    assert claim(engine, 1, "alive", now=T0 + timedelta(seconds=899), lease_seconds=900) == []
    [again] = claim(engine, 1, "alive", now=T0 + timedelta(seconds=901), lease_seconds=900)
    assert again.id == first.id
    assert (again.claimed_by, again.attempts) == ("alive", 0)
    assert _task(engine, again.id).claims == 2  # the dead worker's claim still counts (poison rule)
    # the dead worker wakes up: its lease is gone and it can neither renew nor release the task
    assert renew_lease(engine, [first.id], "dead") == []
    assert release(engine, [first.id], "dead") == []
    assert _task(engine, first.id).claimed_by == "alive"


def test_renewing_a_lease_keeps_the_task(engine: Engine) -> None:
    enqueue(engine, "t", {"a": 1})
    [task] = claim(engine, 1, "w", now=T0)
    assert renew_lease(engine, [task.id, 999], "w", now=T0 + timedelta(seconds=800)) == [task.id]
    assert claim(engine, 1, "other", now=T0 + timedelta(seconds=1000), lease_seconds=900) == []
    assert len(claim(engine, 1, "other", now=T0 + timedelta(seconds=1701), lease_seconds=900)) == 1


def test_release_returns_tasks_to_the_queue(engine: Engine) -> None:
    _fill(engine, 3)
    held = [t.id for t in claim(engine, 3, "w")]
    assert release(engine, held[:1], "someone-else") == []
    assert release(engine, held[:2], "w") == held[:2]
    assert release(engine, held[2:], "w", count_attempt=True) == held[2:]
    assert [(_task(engine, i).status, _task(engine, i).attempts) for i in held] == [
        (TaskStatus.QUEUED, 0),
        (TaskStatus.QUEUED, 0),
        (TaskStatus.QUEUED, 1),
    ]
    assert _task(engine, held[0]).claimed_by is None
    assert len(claim(engine, 10, "w2")) == 3


def test_tasks_in_other_states_are_never_claimed(engine: Engine) -> None:
    _fill(engine, 6)
    with Session(engine) as session:
        tasks = list(session.exec(select(Task).order_by(col(Task.id))))
        for task, status in zip(tasks, TaskStatus, strict=True):
            task.status = status
            task.claimed_at = T0  # an old lease: only matters for 'claimed'
        session.commit()
    got = claim(engine, 10, "w", now=T0 + timedelta(hours=1))
    assert sorted(t.payload["i"] for t in got) == [0, 1]  # queued, and claimed with an expired lease


def test_lapsed_leases_and_queued_tasks_are_claimed_in_one_order(engine: Engine) -> None:
    """The claim reads the queued tasks and the lapsed leases apart (each from its own index) and merges them:
    together they still come in priority, deadline, id order, ``n`` at most, of the asked types only."""
    for name, priority in [("lapsed-high", 5), ("lapsed-low", -5), ("lapsed-other-type", 9)]:
        enqueue(engine, "other" if "other" in name else "t", {"n": name}, priority=priority)
    assert len(claim(engine, 3, "dead", now=T0, lease_seconds=60)) == 3
    for name, priority in [("queued-top", 7), ("queued-mid", 0), ("queued-low", -9)]:
        enqueue(engine, "t", {"n": name}, priority=priority)
    later = T0 + timedelta(minutes=5)
    first = claim(engine, 2, "alive", task_types=["t"], now=later, lease_seconds=60)
    assert [t.payload["n"] for t in first] == ["queued-top", "lapsed-high"]
    rest = claim(engine, 10, "alive", task_types=["t"], now=later, lease_seconds=60)
    assert [t.payload["n"] for t in rest] == ["queued-mid", "lapsed-low", "queued-low"]
    assert [t.payload["n"] for t in claim(engine, 10, "alive", now=later, lease_seconds=60)] == ["lapsed-other-type"]


def _claim_plan(engine: Engine, **claim_args: object) -> list[tuple[object, ...]]:
    """The plan of the statement a real claim runs, with its own parameters (caught as it is sent)."""
    sent: list[tuple[str, object]] = []

    def catch(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        if statement.lstrip().startswith("WITH queued_first"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", catch)
    try:
        claim(engine, 100, "w", **claim_args)  # type: ignore[arg-type]
    finally:
        event.remove(engine, "before_cursor_execute", catch)
    [(statement, parameters)] = sent
    explain = "EXPLAIN" if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(f"{explain} {statement}", parameters)]  # type: ignore[arg-type]


def _queued_half(plan: list[tuple[object, ...]], dialect: str) -> list[str]:
    """The plan lines of the claim's queued half (the ``queued_first`` CTE)."""
    if dialect == "postgresql":
        lines = [str(row[0]) for row in plan]
        start = next(i for i, line in enumerate(lines) if "CTE queued_first" in line)
        end = next(i for i, line in enumerate(lines) if "CTE lapsed_first" in line)
        return lines[start:end]
    [node] = [row[0] for row in plan if row[3] == "CO-ROUTINE queued_first"]
    return [str(row[3]) for row in plan if row[1] == node]


@pytest.mark.parametrize("task_types", [None, ["t"]])
def test_a_claim_reads_the_claim_order_index_not_a_sort_of_the_queue(
    engine: Engine, db_backend: str, task_types: list[str] | None
) -> None:
    """The claim's queued half reads the index in claim order and sorts nothing, on both databases: on SQLite
    even without statistics (a queue of small loads), on PostgreSQL once the planner knows the queue is deep
    (a load of 10,000 tasks or more analyzes the table; autovacuum does so too, later)."""
    _fill(engine, 12_000 if db_backend == "postgresql" else 2_000)
    queued_half = _queued_half(_claim_plan(engine, task_types=task_types), db_backend)
    assert any("ix_task_queued_claim_order" in line for line in queued_half), queued_half
    assert not [line for line in queued_half if "Sort" in line or "TEMP B-TREE" in line], queued_half


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="worker"):
        claim(None, 1, "")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        claim(None, -1, "w")  # type: ignore[arg-type]


@pytest.mark.timeout(120)
def test_concurrent_claimers_never_share_or_lose_a_task(engine: Engine) -> None:
    total, workers = 600, 6
    _fill(engine, total)
    barrier = threading.Barrier(workers)
    claimed: dict[str, list[int]] = {f"w{i}": [] for i in range(workers)}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        rng = random.Random(name)
        try:
            barrier.wait()
            while batch := claim(engine, n := rng.randint(1, 9), name):
                assert len(batch) <= n
                claimed[name].extend(t.id for t in batch)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = [task_id for ids in claimed.values() for task_id in ids]
    assert len(everything) == len(set(everything)) == total
    assert sum(1 for ids in claimed.values() if ids) >= 2, "the workers did not actually overlap"
    with Session(engine) as session:
        rows = session.exec(select(Task.id, Task.claimed_by, Task.status)).all()
    owner = {(task_id, name) for name, ids in claimed.items() for task_id in ids}
    assert {(task_id, by) for task_id, by, _ in rows} == owner
    assert {status for _, _, status in rows} == {TaskStatus.CLAIMED}
