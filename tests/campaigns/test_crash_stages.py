"""Crash campaign for pipeline stages and de-duplication: a worker SIGKILLed between an upstream result and
its stage tasks, or while twins are linked or settled, leaves exactly one stage task per matching upstream
task once a healthy worker has finished, loses no twin, and pays nothing twice or unrecorded.

Each run: a fresh database, the chained workload of :mod:`tests.pipeline.stages_workload` (triage -> reply,
triage -> dates -> judge, rank -> answer) with every ticket twice (so twins are linked and settled), a
share of the provider's results errored (re-queued leaders take their twins back to the queue), a worker
killed at one point, then a healthy worker finishing the work. Every kill point runs on both databases.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from nightbatch.db.models import Task, TaskStage, TaskStatus, TaskTwin
from nightbatch.emulator import EmulatorServer
from nightbatch.pipeline.condition import parse_condition
from nightbatch.pipeline.graph import StageGraph
from nightbatch.queue.enqueue import enqueue_jsonl
from nightbatch.tasktypes import load_task_types
from tests.campaigns.crashing_worker import ForkServer
from tests.campaigns.harness import PRICES, Sandbox, finish, reset_emulator
from tests.campaigns.invariants import check
from tests.campaigns.test_crash import COMMIT, KillPoint, _points
from tests.pipeline.stages_workload import task_lines, write_config

DOWNSTREAM = "nightbatch.pipeline.downstream"
STAGES = "nightbatch.db.stages"
TWINS = "nightbatch.db.twins"

POINTS: list[KillPoint] = [
    *_points(f"{DOWNSTREAM}:Downstream.flush", "call", [1, 2], "upstream results decided, stage tasks not written"),
    *_points(f"{STAGES}:insert_stage_tasks", "return", [1, 2], "stage tasks written, the ingest uncommitted"),
    *_points(f"{DOWNSTREAM}:stage_tasks", "return", [1], "stage tasks built, not inserted"),
    *_points(f"{TWINS}:settle_twins", "return", [1], "twins settled from their leaders, uncommitted"),
    *_points(f"{TWINS}:link_twins", "call", [1], "leader's batch created, twins not linked"),
    *_points(f"{TWINS}:link_twins", "return", [1], "twins linked"),
    *_points("nightbatch.collect.ingest:ingest_batch", "return", [1, 2], "an upstream ingest committed"),
    *_points(COMMIT, "return", [6, 9, 12], "after the N-th commit"),
]
STEPS = ["submit", "advance:3600", "collect", "submit", "advance:3600", "collect"]


def stage_violations(engine: Engine, graph: StageGraph) -> list[str]:
    """Exactly one stage task per (succeeded upstream task, stage whose condition holds), and no other."""
    with engine.connect() as conn:
        tasks = {t.id: t for t in (Task.model_validate(r._mapping) for r in conn.execute(select(Task)))}
        links = [TaskStage.model_validate(r._mapping) for r in conn.execute(select(TaskStage))]
    found: Counter[tuple[int, str]] = Counter((s.upstream_task_id, s.stage) for s in links)
    expected: set[tuple[int, str]] = set()
    for task in tasks.values():
        if task.status != TaskStatus.SUCCEEDED:
            continue
        for stage in graph.downstream.get(task.task_type, ()):
            when = graph.specs[stage].when
            if when is None or parse_condition(when).holds(task.output_inline, task.payload):
                expected.add((task.id, stage))
    problems = [f"upstream task {u} has {n} {s!r} stage tasks" for (u, s), n in found.items() if n > 1]
    problems += [f"upstream task {u} succeeded but has no {s!r} stage task" for u, s in expected - set(found)]
    problems += [f"stage task for upstream {u} ({s!r}) that the condition rules out" for u, s in set(found) - expected]
    linked = {s.task_id for s in links}
    problems += [f"stage task {t.id} has no task_stage row" for t in tasks.values()
                 if (t.source or "").startswith("stage:") and t.id not in linked]  # fmt: skip
    return problems


def worker_job(run: Any, emulator: EmulatorServer, config: Path, worker: str, **job: Any) -> dict[str, Any]:
    return {"db_url": run.url, "store": str(run.store_root), "base_url": emulator.base_url, "config": str(config),
            "worker": worker, "steps": STEPS, "chunk": 2, "error_file": str(run.folder / f"error-{worker}.txt"),
            **job}  # fmt: skip


@pytest.mark.slow
def test_a_worker_killed_between_an_upstream_result_and_its_stage_tasks_leaves_exactly_one_each(
    db_url: str, db_backend: str, emulator: EmulatorServer, tmp_path: Path
):
    config = write_config(tmp_path)
    graph = StageGraph.of(load_task_types(config))
    sandbox = Sandbox(db_url, tmp_path, config)
    lines = task_lines(copies=1)
    twice = lines[:-1] + [line.replace('"key": "', '"key": "twin-') for line in lines[:-1]] + lines[-1:]
    violations: list[str] = []
    reached: list[str] = []
    outcomes: Counter[str] = Counter()
    twins = 0
    with ForkServer(str(tmp_path / "fork-server.log")) as server:
        with sandbox.run() as run:
            reset_emulator(emulator, 0)
            enqueue_jsonl(run.engine, twice, source_name="stages.jsonl")
            assert server.run({**worker_job(run, emulator, config, "warm-up"), "warm": True})["outcome"] == "finished"
        for seed, point in enumerate(POINTS):
            with sandbox.run() as run:
                reset_emulator(emulator, seed)
                enqueue_jsonl(run.engine, twice, source_name="stages.jsonl")
                emulator.faults.error_requests("api_error", rate=0.3)
                answer = server.run(worker_job(run, emulator, config, "crash-0", kill=point.job()))
                outcomes[answer["outcome"]] += 1
                if answer["outcome"] == "killed":
                    reached.append(str(point))
                elif answer["outcome"] != "finished":
                    violations.append(f"{point}: worker {answer['outcome']}: {answer.get('error')}")
                emulator.faults.clear()
                rescuer = run.services(emulator.base_url, "rescuer")
                finish(rescuer, emulator, rounds=12)
                outcome = check(run.engine, run.store, emulator.ledger.entries(), PRICES)
                violations += [f"{point}: {v}" for v in outcome.violations]
                violations += [f"{point}: {v}" for v in stage_violations(run.engine, graph)]
                with run.engine.connect() as conn:
                    twins += conn.execute(select(func.count()).select_from(TaskTwin)).scalar_one()
                rescuer.close()
    print(f"\nstage crash campaign [{db_backend}]: {len(POINTS)} kill points, {len(reached)} reached; "
          f"workers {dict(outcomes)}; twins linked {twins}; violations {len(violations)}")  # fmt: skip
    for violation in violations[:40]:
        print("  VIOLATION", violation[:800])
    assert not violations
    assert twins, "no twin was linked: the de-duplication kill points were not exercised"
    assert len(reached) >= len(POINTS) - 2, f"kill points not reached: {set(map(str, POINTS)) - set(reached)}"
