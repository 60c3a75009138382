"""The queue's task transitions in the database port: insert, claim (atomic, SKIP LOCKED on PostgreSQL),
poison, release and lease renewal, called directly (the queue's own tests go through ``nightbatch.queue``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text

from nightbatch.db.models import TaskStatus, metadata
from nightbatch.db.task_claims import POISON_MESSAGE, claim_tasks, release_tasks, renew_leases
from nightbatch.db.task_inserts import insert_task, inserting_tasks
from nightbatch.queue.taskfile import TaskSpec, canonical_json, make_task_spec

T0 = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)
TASK = metadata.tables["task"]


def _spec(n: int, task_type: str = "t", **kwargs: object) -> TaskSpec:
    return make_task_spec(task_type, {"n": n}, **kwargs)  # type: ignore[arg-type]


def _fill(engine: Engine, n: int, task_type: str = "t") -> None:
    specs = [_spec(i, task_type) for i in range(n)]
    with inserting_tasks(engine, source="test", now=T0, encode=canonical_json) as inserter:
        inserter.insert(specs, f"[{','.join(inserter.encode(s) for s in specs)}]", replace=False)


def _row(engine: Engine, task_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(conn.execute(select(TASK).where(TASK.c.id == task_id)).one()._mapping)


def _claim(engine: Engine, n: int, worker: str, now: datetime = T0, poison_claims: int = 3) -> list[int]:
    claimed = claim_tasks(engine, n, worker, now=now, stale_before=now - timedelta(minutes=15), task_types=None,
                          poison_claims=poison_claims)  # fmt: skip
    return sorted(t.id for t in claimed)


def test_insert_task_is_idempotent_by_key(engine: Engine) -> None:
    first = insert_task(engine, _spec(1), source="a", now=T0)
    again = insert_task(engine, make_task_spec("t", {"n": 2}, key=_spec(1).key), source="b", now=T0)
    assert first[1] is True
    assert again == (first[0], False)
    row = _row(engine, first[0])
    assert (row["payload"], row["source"], row["status"]) == ({"n": 1}, "a", TaskStatus.QUEUED)


def test_a_chunk_counts_inserted_types_and_conflicts_and_replaces_only_when_asked(engine: Engine) -> None:
    _fill(engine, 3)
    changed = [make_task_spec("t", {"n": 99}, key=_spec(0).key), _spec(1), _spec(7, "u")]
    for replace in (False, True):
        with inserting_tasks(engine, source="f", now=T0, encode=canonical_json) as inserter:
            done = inserter.insert(changed, f"[{','.join(inserter.encode(s) for s in changed)}]", replace=replace)
        assert done.conflicts == [_spec(0).key]
        assert done.replaced == (1 if replace else 0)
        assert done.inserted_types == ([] if replace else ["u"])
    with engine.connect() as conn:
        payload = conn.execute(select(TASK.c.payload).where(TASK.c.idempotency_key == _spec(0).key)).scalar_one()
    assert payload == {"n": 99}


def test_an_insert_transaction_is_all_or_nothing(engine: Engine) -> None:
    def half_a_file() -> None:
        with inserting_tasks(engine, source="f", now=T0, encode=canonical_json) as inserter:
            inserter.insert([_spec(1)], f"[{inserter.encode(_spec(1))}]", replace=False)
            raise RuntimeError("a bad line further down the file")

    with pytest.raises(RuntimeError):
        half_a_file()
    with engine.connect() as conn:
        assert conn.execute(select(TASK.c.id)).all() == []


def test_claim_counts_the_claim_and_release_takes_it_back(engine: Engine) -> None:
    _fill(engine, 3)
    ids = _claim(engine, 2, "w1")
    assert len(ids) == 2
    row = _row(engine, ids[0])
    assert (row["status"], row["claimed_by"], row["claims"]) == (TaskStatus.CLAIMED, "w1", 1)
    assert release_tasks(engine, ids, "w2", count_attempt=False) == []  # not w2's to release
    assert release_tasks(engine, [*ids, 999], "w1", count_attempt=True) == ids
    row = _row(engine, ids[0])
    assert (row["status"], row["claimed_by"], row["claims"], row["attempts"]) == (TaskStatus.QUEUED, None, 0, 1)


def test_a_stale_claim_is_taken_over_and_renewing_keeps_it(engine: Engine) -> None:
    _fill(engine, 2)
    ids = _claim(engine, 2, "dead", now=T0)
    later = T0 + timedelta(minutes=20)
    assert renew_leases(engine, ids[:1], "dead", now=later) == ids[:1]
    assert _claim(engine, 5, "alive", now=later + timedelta(minutes=1)) == ids[1:]
    assert renew_leases(engine, ids, "dead", now=later) == ids[:1]  # the other one was lost
    assert _row(engine, ids[1])["claims"] == 2


def test_a_task_that_took_down_too_many_workers_fails_as_poison(engine: Engine) -> None:
    _fill(engine, 1)
    now = T0
    for worker in ("w1", "w2"):
        assert len(_claim(engine, 1, worker, now=now, poison_claims=2)) == 1
        now += timedelta(hours=1)  # each worker dies: its lease lapses
    assert _claim(engine, 1, "w3", now=now, poison_claims=2) == []
    row = _row(engine, 1)
    assert (row["status"], row["error_type"], row["claimed_by"]) == (TaskStatus.FAILED, "poison", None)
    assert row["error_message"] == POISON_MESSAGE.format(n=2)


def test_two_claimers_at_once_never_get_the_same_task(engine: Engine) -> None:
    _fill(engine, 300)
    start = threading.Barrier(4)
    taken: dict[str, list[int]] = {f"w{i}": [] for i in range(4)}

    def work(worker: str) -> None:
        start.wait()
        while ids := _claim(engine, 7, worker):
            taken[worker] += ids

    threads = [threading.Thread(target=work, args=(w,)) for w in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [task_id for ids in taken.values() for task_id in ids]
    assert len(every) == len(set(every)) == 300
    with engine.connect() as conn:
        owners = dict(conn.execute(select(TASK.c.id, TASK.c.claimed_by)).all())
    assert all(owners[task_id] == worker for worker, ids in taken.items() for task_id in ids)


def test_postgresql_claims_skip_rows_another_claimer_has_locked(engine: Engine, db_backend: str) -> None:
    if db_backend != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serializes writers instead")
    _fill(engine, 4)
    with engine.connect() as holder:
        holder.execute(text("SELECT id FROM task WHERE id IN (1, 2) FOR UPDATE"))  # a claim in progress
        assert _claim(engine, 4, "w2") == [3, 4]  # no wait: the locked rows are skipped, not blocked on
        holder.rollback()
    assert _claim(engine, 4, "w3") == [1, 2]
