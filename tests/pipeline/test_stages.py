"""Pipeline stages end to end on the emulator (SQLite and PostgreSQL): chains of two and three stages,
conditions, rerank top-K, and stage tasks made exactly once however often a batch is ingested."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, update
from sqlmodel import col

from nightbatch.collect.ingest import ingest_batch
from nightbatch.collect.poll import collect_step
from nightbatch.db.models import (
    Batch,
    BatchStatus,
    ServiceTier,
    Task,
    TaskStage,
    TaskStatus,
    UsagePurpose,
    UsageRecord,
)
from nightbatch.emulator import EmulatorServer
from nightbatch.errors import ConfigError
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types
from tests.pipeline.conftest import make_services
from tests.pipeline.stages_workload import enqueue_chains, write_config


@pytest.fixture
def chained(engine: Engine, tmp_path: Path, emulator: EmulatorServer) -> Iterator[Services]:
    services = make_services(engine, LocalObjectStore(tmp_path / "store"), emulator.base_url)
    services.registry = load_task_types(write_config(tmp_path))
    yield services
    services.close()


def drain(services: Services, emulator: EmulatorServer, rounds: int = 8) -> int:
    """Submit, an hour of provider time, collect, until nothing is queued or in flight; returns the rounds used."""
    for used in range(1, rounds + 1):
        submit_step(services)
        emulator.advance(3600)
        collect_step(services)
        with services.engine.connect() as conn:
            open_tasks = conn.execute(
                select(func.count()).where(col(Task.status).in_([TaskStatus.QUEUED, TaskStatus.SUBMITTED]))
            ).scalar_one()
        if open_tasks == 0:
            return used
    raise AssertionError(f"work left after {rounds} rounds")


def tasks_by_type(engine: Engine) -> dict[str, list[Task]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Task).order_by(col(Task.id))).all()
    found: dict[str, list[Task]] = {}
    for row in rows:
        task = Task.model_validate(row._mapping)
        found.setdefault(task.task_type, []).append(task)
    return found


def stage_rows(engine: Engine) -> list[TaskStage]:
    with engine.connect() as conn:
        return [TaskStage.model_validate(r._mapping) for r in conn.execute(select(TaskStage))]


def test_two_and_three_stage_chains_run_end_to_end_and_only_matching_tasks_go_on(
    chained: Services, emulator: EmulatorServer
):
    enqueue_chains(chained.engine)
    rounds = drain(chained, emulator)
    assert rounds == 3  # triage / rank, then reply / dates / answer, then judge: one round per stage
    found = tasks_by_type(chained.engine)
    assert sorted(t.output_inline for t in found["triage"]) == ["account", "billing", "billing", "bug"]
    assert all(t.status == TaskStatus.SUCCEEDED for ts in found.values() for t in ts)
    # reply: only billing and account tickets (3 of 4); dates: billing only (2); judge: the one with a date.
    assert sorted(t.payload["label"] for t in found["reply"]) == ["account", "billing", "billing"]
    assert len(found["dates"]) == 2
    assert [t.payload["date"] for t in found["judge"]] == ["2026-03-05"]
    assert found["judge"][0].output_inline["verdict"] in ("approve", "reject", "escalate")
    # Every stage task knows its upstream task and its pipeline item (the first stage's task).
    links = {s.task_id: s for s in stage_rows(chained.engine)}
    judge = links[found["judge"][0].id]
    dates_task = next(t for t in found["dates"] if t.id == judge.upstream_task_id)
    assert links[dates_task.id].root_task_id == judge.root_task_id
    assert judge.pipeline == "triage"
    assert judge.stage == "judge"
    assert {t.id for t in found["triage"]} >= {s.root_task_id for s in links.values() if s.pipeline == "triage"}


def test_rerank_sends_only_the_top_k_documents_the_cheap_step_chose(chained: Services, emulator: EmulatorServer):
    enqueue_chains(chained.engine)
    drain(chained, emulator)
    found = tasks_by_type(chained.engine)
    (answer,) = found["answer"]
    assert answer.payload["question"] == "How long does a refund take?"
    assert answer.payload["documents"] == [
        "How long a refund takes depends on the bank.",
        "A refund takes ten days to reach your card.",
    ]
    assert found["rank"][0].output_inline["scores"][0] < found["rank"][0].output_inline["scores"][1]


def test_ingesting_a_batch_again_makes_no_second_stage_task(chained: Services, emulator: EmulatorServer):
    enqueue_chains(chained.engine)
    submit_step(chained)
    emulator.advance(3600)
    collect_step(chained)
    before = Counter(s.stage for s in stage_rows(chained.engine))
    assert before == {"reply": 3, "dates": 2, "answer": 1}
    with chained.engine.begin() as conn:  # as if the batches had never been marked ingested
        conn.execute(update(Batch).values(status=BatchStatus.ENDED))
        batch_ids = list(conn.execute(select(Batch.id)).scalars())
        # Their tasks back to submitted: the ingest re-decides every result and re-notes every success.
        conn.execute(
            update(Task).where(col(Task.task_type).in_(["triage", "rank"])).values(status=TaskStatus.SUBMITTED)
        )
    for batch_id in batch_ids:
        report = ingest_batch(chained, batch_id)
        assert report.stage_tasks == 0
    assert Counter(s.stage for s in stage_rows(chained.engine)) == before
    with chained.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Task)).scalar_one() == 5 + 6


def test_a_cycle_or_an_unknown_upstream_is_a_config_error(tmp_path: Path):
    cycle = tmp_path / "cycle.toml"
    cycle.write_text(
        '[task_types.a]\nmodel = "claude-haiku-4-5"\nmax_tokens = 8\nafter = "b"\n'
        '[task_types.b]\nmodel = "claude-haiku-4-5"\nmax_tokens = 8\nafter = "a"\n'
    )
    with pytest.raises(
        ConfigError, match=r"cycle.toml: task type 'a': field `after`: the stages form a cycle: a -> b -> a"
    ):
        load_task_types(cycle)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[task_types.a]\nmodel = "claude-haiku-4-5"\nmax_tokens = 8\nafter = "nope"\n')
    with pytest.raises(ConfigError, match=r"'nope' is not a configured task type"):
        load_task_types(unknown)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[task_types.a]\nmodel = "claude-haiku-4-5"\nmax_tokens = 8\n'
        '[task_types.b]\nmodel = "claude-haiku-4-5"\nmax_tokens = 8\nafter = "a"\nwhen = "output = 1"\n'
    )
    with pytest.raises(ConfigError, match=r"task type 'b'.*condition 'output = 1': unexpected character '=' at 8"):
        load_task_types(bad)


def test_a_task_the_realtime_fallback_answered_sets_off_its_stages_at_the_next_submit(
    chained: Services, emulator: EmulatorServer
):
    enqueue_chains(chained.engine)
    found = tasks_by_type(chained.engine)
    answered = next(t for t in found["triage"] if "2026-03-05" in t.payload["text"])
    with chained.engine.begin() as conn:  # what the deadline fallback records (nightbatch.db.deadlines)
        conn.execute(
            update(Task).where(col(Task.id) == answered.id).values(status=TaskStatus.SUCCEEDED, output_inline="billing")
        )
        conn.execute(
            insert(UsageRecord).values(
                task_id=answered.id,
                model="claude-haiku-4-5",
                service_tier=ServiceTier.STANDARD,
                price_version="test",
                cost_pusd=1,
                purpose=UsagePurpose.FALLBACK,
                created_at=datetime.now(UTC),
            )
        )
    submit_step(chained)
    submit_step(chained)  # a second round finds them made: nothing twice
    mine = [s for s in stage_rows(chained.engine) if s.upstream_task_id == answered.id]
    assert sorted(s.stage for s in mine) == ["dates", "reply"]
