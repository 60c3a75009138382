"""``on_deadline`` in TOML, measured batch durations (p50/p95 by model, size and hour) and the early real-time path."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert
from sqlmodel import Session, select

from nightbatch.db.durations import BatchDuration
from nightbatch.db.models import Batch, BatchStatus, Task, TaskStatus, UsageRecord
from nightbatch.deadline.durations import DurationModel, expected_finishes, size_bucket
from nightbatch.deadline.policy import deadline_step
from nightbatch.emulator import EmulatorServer
from nightbatch.errors import ConfigError
from nightbatch.services import Services
from nightbatch.tasktypes import load_task_types
from tests.deadline.test_policies import TYPE, enqueue_triage, with_policy

NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def one_type(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "nightbatch.toml"
    path.write_text(f'[task_types.triage]\nmodel = "claude-haiku-4-5"\nmax_tokens = 8\n{extra}\n', encoding="utf-8")
    return path


def test_on_deadline_defaults_to_next_run_and_reads_each_policy(tmp_path: Path) -> None:
    assert load_task_types(one_type(tmp_path, "")).get("triage").on_deadline == "next_run"
    for policy in ("realtime", "next_run", "fail"):
        assert load_task_types(one_type(tmp_path, f'on_deadline = "{policy}"')).get("triage").on_deadline == policy


def test_an_unknown_on_deadline_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="on_deadline"):
        load_task_types(one_type(tmp_path, 'on_deadline = "later"'))


def sample(model: str, requests: int, hours: float, at: datetime = NOON) -> BatchDuration:
    return BatchDuration(model, requests, at, hours * 3600)


def test_percentiles_use_the_narrowest_group_with_enough_samples() -> None:
    model = DurationModel(
        [sample("m", 50, h) for h in (1, 2, 3, 4)]  # noon, small
        + [sample("m", 50, 10, NOON.replace(hour=2)) for _ in range(3)]  # 2 am, small: slow
        + [sample("m", 5_000, 20)]  # one large batch
    )
    noon = model.spread("m", 10, NOON)
    assert noon is not None
    assert (noon.scope, noon.samples, noon.p50, noon.p95) == ("model/size/hour", 4, 2 * 3600, 4 * 3600)
    night = model.spread("m", 10, NOON.replace(hour=2))
    assert night is not None
    assert (night.scope, night.p50) == ("model/size/hour", 10 * 3600)
    large = model.spread("m", 6_000, NOON)  # one sample of its size: falls back to the whole model
    assert large is not None
    assert (large.scope, large.samples) == ("model", 8)
    other = model.spread("other", 10, NOON)  # nothing of that model: every batch
    assert other is not None
    assert other.scope == "all"
    assert DurationModel([]).spread("m", 10, NOON) is None  # no history, no guess
    assert [size_bucket(n) for n in (1, 100, 101, 1_000, 10_001, 100_001)] == [
        "1-100", "1-100", "101-1k", "101-1k", "10k-100k", "over-100k"
    ]  # fmt: skip


def add_batch(engine: Engine, *, status: BatchStatus, submitted: datetime, ended: datetime | None,
              canceled: int = 0, model: str = "claude-haiku-4-5") -> None:  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            insert(Batch).values(
                provider_batch_id=f"msgbatch_test{next(_ids)}",
                model=model,
                status=status,
                request_count=10,
                submitted_at=submitted,
                ended_at=ended,
                canceled_count=canceled,
            )
        )


def test_durations_come_from_the_batch_rows_and_in_flight_batches_get_an_expected_finish(engine: Engine) -> None:
    for hours in (1, 2, 3):
        add_batch(engine, status=BatchStatus.INGESTED, submitted=NOON, ended=NOON + timedelta(hours=hours))
    # A batch canceled part-way says when someone gave up, not how long the queue took: left out.
    add_batch(engine, status=BatchStatus.INGESTED, submitted=NOON, ended=NOON + timedelta(minutes=1), canceled=5)
    add_batch(engine, status=BatchStatus.IN_PROGRESS, submitted=NOON + timedelta(days=1), ended=None)
    model = DurationModel.load(engine)
    assert sorted(s.seconds for s in model.samples) == [3600, 7200, 10800]
    (expected,) = expected_finishes(engine, NOON + timedelta(days=1, minutes=30), model=model)
    assert expected.p50_at == NOON + timedelta(days=1, hours=2)
    assert expected.p95_at == NOON + timedelta(days=1, hours=3)
    assert "p95" in expected.describe()
    assert not expected.overdue
    (late,) = expected_finishes(engine, NOON + timedelta(days=1, hours=4), model=model)
    assert late.overdue
    assert "OVERDUE" in late.describe()
    assert model.groups() == [("claude-haiku-4-5", "1-100", 3, 7200.0, 10800.0)]


def test_realtime_sends_a_task_from_the_start_when_its_deadline_is_sooner_than_p95(
    services: Services, emulator: EmulatorServer
) -> None:
    services = with_policy(services, "realtime")
    now = datetime.now(UTC)
    for hours in (4, 5, 6):  # history: haiku batches take hours
        add_batch(services.engine, status=BatchStatus.INGESTED, submitted=now - timedelta(days=1),
                  ended=now - timedelta(days=1) + timedelta(hours=hours))  # fmt: skip
    soon = enqueue_triage(services, now + timedelta(hours=2))  # 2 h < p95 (6 h), well outside the margin
    report = deadline_step(services, now=now, task_types=[TYPE])
    assert sorted(report.realtime_early) == sorted(soon)
    assert report.canceled_batches == []
    with Session(services.engine) as session:
        tasks = session.exec(select(Task)).all()
        rows = session.exec(select(UsageRecord)).all()
    assert {t.status for t in tasks} == {TaskStatus.SUCCEEDED}
    assert {(str(r.service_tier), str(r.purpose)) for r in rows} == {("standard", "fallback")}
    assert len(rows) == len(soon) == len(emulator.ledger.entries())


@pytest.mark.parametrize("policy", ["next_run", "fail"])
def test_next_run_and_fail_never_go_early(services: Services, emulator: EmulatorServer, policy: str) -> None:
    now = datetime.now(UTC)
    for hours in (4, 5, 6):
        add_batch(services.engine, status=BatchStatus.INGESTED, submitted=now - timedelta(days=1),
                  ended=now - timedelta(days=1) + timedelta(hours=hours))  # fmt: skip
    enqueue_triage(services, now + timedelta(hours=2))
    report = deadline_step(with_policy(services, policy), now=now, task_types=[TYPE])
    assert (report.realtime_early, report.failed, report.left_queued) == ([], [], [])
    assert len(emulator.ledger.entries()) == 0
