"""The backfill benchmark's moving parts, small and in-process (its timings are not tested, only its logic).

The workload's two sources, the workers' loop (two at once, here threads sharing one emulator and one
database instead of processes) and the exactly-once check: a clean run passes it, and the check does
see a batch ingested twice, a task sent twice and a claim that went unaccounted for.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import update

from benchmarks import backfill_work as backfill
from benchmarks.backfill_check import check
from nightbatch.db import make_engine
from nightbatch.db.models import Task
from nightbatch.emulator import EmulatorConfig, EmulatorServer

TASKS = 240


def test_a_small_backfill_runs_and_passes_the_exactly_once_check(
    db_url: str, emulator: EmulatorServer, s3_endpoint_url: str, aws_env: dict[str, str], tmp_path: Path
):
    emulator.reset(EmulatorConfig(seed=3, **{**backfill.EMULATOR, "time_scale": 3600.0}))
    config = tmp_path / "backfill.toml"
    config.write_text(backfill.TASK_TYPES)
    store = str(tmp_path / "store")
    local, remote = backfill.write_workload(tmp_path, TASKS)
    assert len(list(local.iterdir())) == len(remote) == backfill.FILES
    prefix = backfill.upload(remote, s3_endpoint_url, f"{tmp_path.name}/dates")
    sources = [[str(local), "ticket_triage"], [prefix, "date_extraction"]]
    enqueued = backfill.case_enqueue(db_url, store, str(config), sources, s3_endpoint_url)
    assert [s["tasks"] for s in enqueued["sources"]] == [TASKS * 0.8, TASKS * 0.2]

    go, lock = tmp_path / "go", str(tmp_path / "submit.lock")
    go.touch()
    logs: list[dict[str, Any]] = []

    def work(name: str) -> None:
        logs.append(backfill.case_worker(db_url, store, str(config), emulator.base_url, name, TASKS, lock, str(go)))

    workers = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=120)
    assert len(logs) == 2
    assert sum(w["submitted"] for w in logs) == TASKS
    checked = check(db_url, store, emulator.base_url, TASKS, logs)
    assert checked["problems"] == []
    assert checked["tasks_by_status"] == {"succeeded": TASKS}
    assert checked["billed"] == TASKS

    # The check is not blind: a batch ingested by two workers, a claim never accounted for, a task sent twice.
    first = (logs[0]["ingested"] + logs[1]["ingested"])[0]
    other = 1 if first in logs[0]["ingested"] else 0  # the worker that did not ingest it claims it did too
    doubled = list(logs)
    doubled[other] = {**logs[other], "ingested": [*logs[other]["ingested"], first]}
    lost = [{**logs[0], "claimed": logs[0]["claimed"] + 1}, logs[1]]
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.id == 1).values(attempts=2))
    engine.dispose()
    problems = check(db_url, store, emulator.base_url, TASKS, doubled)["problems"]
    assert any("ingested 2 times" in p for p in problems)
    assert any("sent more than 1 time" in p for p in problems)
    assert any("a claim was lost" in p for p in check(db_url, store, emulator.base_url, TASKS, lost)["problems"])
