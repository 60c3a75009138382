"""The tables: portable types behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import select

from nightbatch.db import (
    Batch,
    Run,
    ServiceTier,
    Task,
    TaskStatus,
    UsagePurpose,
    UsageRecord,
    session_scope,
    utcnow,
)


def _task(key: str = "k", **fields: Any) -> Task:
    return Task(task_type="t", payload={"x": 1}, idempotency_key=key, **fields)


def _usage(task_id: int | None, batch_id: int | None, **fields: Any) -> UsageRecord:
    values: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "service_tier": ServiceTier.BATCH,
        "price_version": "2026-11",
        "cost_pusd": 1,
        **fields,
    }
    return UsageRecord(task_id=task_id, batch_id=batch_id, **values)


def test_utcnow_is_aware_utc() -> None:
    assert utcnow().tzinfo is UTC


def test_datetimes_round_trip_as_aware_utc(engine: Engine) -> None:
    started = datetime(2026, 3, 1, 2, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(engine) as session:
        run = Run(kind="nightly", started_at=started)
        session.add(run)
    with session_scope(engine) as session:
        loaded = session.exec(select(Run)).one()
    assert loaded.started_at == started
    assert loaded.started_at.tzinfo is UTC
    assert loaded.started_at.hour == 0


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"), session_scope(engine) as session:
        session.add(Run(kind="nightly", started_at=datetime(2026, 3, 1)))


def test_statuses_are_plain_strings_in_the_database(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(_task(status=TaskStatus.SUBMITTED))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM task")).scalar() == "submitted"
    with session_scope(engine) as session:
        assert session.exec(select(Task)).one().status is TaskStatus.SUBMITTED


def test_unknown_status_is_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="'lost' is not a valid TaskStatus"), session_scope(engine) as session:
        session.add(_task(status="lost"))


def test_json_and_nullable_json(engine: Engine) -> None:
    payload = {"text": "naïve café ☕", "nested": {"list": [1, 2.5, None, True]}}
    with session_scope(engine) as session:
        session.add(Task(task_type="t", payload=payload, idempotency_key="a"))
        session.add(Task(task_type="t", payload={}, idempotency_key="b", output_inline="positive"))
    with engine.connect() as conn:
        nulls = conn.execute(text("SELECT idempotency_key FROM task WHERE output_inline IS NULL")).scalars().all()
    assert nulls == ["a"]  # Python None is SQL NULL, not JSON 'null'
    with session_scope(engine) as session:
        tasks = {t.idempotency_key: t for t in session.exec(select(Task))}
    assert tasks["a"].payload == payload
    assert tasks["b"].output_inline == "positive"


def test_picodollar_costs_are_exact_64_bit_integers(engine: Engine) -> None:
    big = 9_000_000_000_000_000_123  # ~ $9M in picodollars, far beyond 32 bits
    with session_scope(engine) as session:
        session.add(_usage(None, None, cost_pusd=big, purpose=UsagePurpose.PRIMING))
        session.add(_usage(None, None, cost_pusd=7, purpose=UsagePurpose.CALIBRATION))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT cost_pusd FROM usage_record ORDER BY id")).scalars().all() == [big, 7]


def test_usage_is_unique_per_task_batch_and_purpose(engine: Engine) -> None:
    with session_scope(engine) as session:
        batch = Batch(model="claude-haiku-4-5")
        task = _task()
        session.add_all([batch, task])
        session.flush()
        assert batch.id is not None
        assert task.id is not None
        ids = (task.id, batch.id)
        session.add(_usage(*ids))
        session.add(_usage(*ids, purpose=UsagePurpose.SHADOW))
        session.add(_usage(task.id, None))  # synchronous calls: batch NULL, not constrained
        session.add(_usage(task.id, None))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(_usage(*ids))


def test_custom_id_is_unique_within_a_batch(engine: Engine) -> None:
    with session_scope(engine) as session:
        batch = Batch(model="m")
        session.add(batch)
        session.flush()
        session.add(_task("a", batch_id=batch.id, custom_id="c1"))
        session.add(_task("b", custom_id="c1"))  # not in a batch: fine
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(_task("c", batch_id=batch.id, custom_id="c1"))


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(_task(batch_id=12345))


def test_defaults_and_updated_at(engine: Engine) -> None:
    with session_scope(engine) as session:
        task = _task()
        session.add(task)
    assert task.status is TaskStatus.QUEUED
    assert (task.attempts, task.priority, task.user_canceled) == (0, 0, False)
    first = task.updated_at
    with session_scope(engine) as session:
        loaded = session.get_one(Task, task.id)
        loaded.priority = 3
    with session_scope(engine) as session:
        assert session.get_one(Task, task.id).updated_at > first
