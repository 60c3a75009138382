"""Backfill: a million tasks of two types, worked off by four worker processes against one PostgreSQL.

The workload is a bulk classification backfill: 80% ticket triage (one label out of six, from local
JSONL files) and 20% date extraction (JSON out, from an S3 prefix on a moto server), both on Haiku 4.5
with short prompts (under the cache minimum, so nothing waits for a cache pilot: the cached-prefix path
is measured by the cost benchmark). Phases, each timed:

1. **enqueue** the JSONL files and the S3 prefix (:func:`nightbatch.sources.enqueue_source`);
2. **work**: N worker processes start together and run the steps of the backfill flow (submit, then
   collect: poll and ingest) in a loop until every task has ended, as N Prefect workers running the
   deployments would. Submitting holds a one-slot lock, standing in for the ``nightbatch-submit`` global
   concurrency limit (docs/scale-out.md): a worker that finds it taken collects instead. Each submit asks
   for the whole backfill and takes it a batch at a time (:func:`nightbatch.submit.chunks.submit_in_chunks`);
   claims go by ``FOR UPDATE SKIP LOCKED``, ingests by a lease on the batch row;
3. **check**: nothing claimed, sent, billed or ingested twice, against three records: the database
   (:func:`nightbatch.db.audit.audit_queue`), the object store (every request in exactly one manifest,
   every result in exactly one output line) and the emulator's own ledger (every request billed once,
   the same cost as ours); plus each worker's account of its claims and of the batches it ingested.

The same work is then done by one worker, in a fresh database, for the ratio. Reported: wall time per
phase, tasks per second end to end, each worker's peak resident set during the work (``VmHWM``, reset when
the work starts) and where it started, the database's size, and the emulator's own figures: its CPU
seconds during the work (it is one process: near one core means it was the bottleneck) and its peak
resident set.

``python -m benchmarks --only backfill`` runs 100k (4 workers), 1M (4 workers) and 1M (1 worker);
``--quick``: 2k, 20k and 20k. ``python -m benchmarks.backfill --tasks 100000 --workers 4 --workers 1``
runs one size. The workload and the worker loop are in :mod:`benchmarks.backfill_work`, the check in
:mod:`benchmarks.backfill_check`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    ROOT,
    EmulatorProcess,
    MiB,
    Row,
    postgres_server_url,
    run_child,
    scratch_database,
    scratch_folder,
)
from benchmarks.backfill_check import check
from benchmarks.backfill_work import (
    EMULATOR,
    FAKE_AWS,
    TASK_TYPES,
    WORK_DEADLINE_SECONDS,
    case_enqueue,
    case_worker,
    moto_server,
    upload,
    write_workload,
)


def _spawn(function: Any, **kwargs: Any) -> subprocess.Popen[str]:
    spec = json.dumps({"module": function.__module__, "function": function.__name__, "kwargs": kwargs})
    return subprocess.Popen([sys.executable, "-m", "benchmarks._child", spec], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, **FAKE_AWS})  # fmt: skip


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=WORK_DEADLINE_SECONDS + 600)
    if process.returncode != 0:
        raise RuntimeError(f"a worker failed (exit {process.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# -- the emulator's own figures ---------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


# -- one scenario -----------------------------------------------------------------------------------


@dataclass
class Scenario:
    tasks: int
    workers: int
    phases: dict[str, float]
    per_worker: list[dict[str, Any]]
    checked: dict[str, Any]
    emulator_cpu: float
    emulator_peak: int

    @property
    def work_seconds(self) -> float:
        return self.phases["work"]

    @property
    def end_to_end(self) -> float:
        return self.phases["enqueue"] + self.phases["work"]


def scenario(tasks: int, workers: int, postgres_url: str, s3: str) -> Scenario:
    """Enqueue ``tasks``, work them off with ``workers`` processes, check; in a fresh database and emulator."""
    with scratch_folder() as folder, scratch_database("postgresql", folder, postgres_url) as url, \
            EmulatorProcess(**EMULATOR) as emulator:  # fmt: skip
        config = folder / "backfill.toml"
        config.write_text(TASK_TYPES)
        store = str(folder / "store")
        local, remote = write_workload(folder, tasks)
        prefix = upload(remote, s3, f"{folder.name}/dates")
        enqueued = run_child(case_enqueue, env=FAKE_AWS, url=url, store=store, config=str(config),
                             sources=[[str(local), "ticket_triage"], [prefix, "date_extraction"]], s3=s3)  # fmt: skip
        phases = {f"enqueue {'S3 prefix' if '://' in s['source'] else 'JSONL files'}": s["seconds"]
                  for s in enqueued["sources"]}  # fmt: skip
        phases["enqueue"] = sum(phases.values())
        go, lock = str(folder / "go"), str(folder / "submit.lock")
        assert emulator._process is not None
        pid = emulator._process.pid
        names = [f"worker-{n}" for n in range(workers)]
        processes = [_spawn(case_worker, url=url, store=store, config=str(config), base_url=emulator.base_url,
                            worker=name, limit=tasks, lock=lock, go=go) for name in names]  # fmt: skip
        while not all(Path(f"{go}.ready-{name}").exists() for name in names):
            if any(p.poll() is not None for p in processes):
                raise RuntimeError("a worker died before the start")
            time.sleep(0.05)
        cpu_before = _cpu_seconds(pid)
        started = time.time()
        Path(go).touch()
        per_worker = [_result(p) for p in processes]
        phases["work"] = max(w["done"] for w in per_worker) - started
        emulator_cpu = _cpu_seconds(pid) - cpu_before
        emulator_peak = _peak_kib(pid) * 1024
        submits = [w["first_submit"] for w in per_worker if w["first_submit"]]
        creates = [w["last_create"] for w in per_worker if w["last_create"]]
        ingests = [(w["first_ingest"], w["last_ingest"]) for w in per_worker if w["first_ingest"]]
        phases["submit (first claim to last create)"] = max(creates) - min(submits) if creates else 0.0
        phases["ingest (first to last)"] = max(i[1] for i in ingests) - min(i[0] for i in ingests) if ingests else 0.0
        phases["drain (last create to last ingest)"] = max(i[1] for i in ingests) - max(creates) if creates else 0.0
        checked_at = time.perf_counter()
        checked = run_child(check, url=url, store_dir=store, base_url=emulator.base_url, tasks=tasks,
                            workers=per_worker)  # fmt: skip
        phases["check"] = time.perf_counter() - checked_at
    return Scenario(tasks, workers, phases, per_worker, checked, emulator_cpu, emulator_peak)


# -- reporting --------------------------------------------------------------------------------------


def describe(s: Scenario) -> str:
    """A few lines on one scenario, for the results file."""
    lines = [f"### {s.tasks:,} tasks, {s.workers} worker(s)", ""]
    lines.append("| phase | seconds |")
    lines.append("|---|---:|")
    lines += [f"| {name} | {seconds:,.1f} |" for name, seconds in s.phases.items()]
    header = (
        "| worker | claimed | sent | batches created | batches ingested | results | submitting s | collecting s "
        "| idle s | RSS at start | peak RSS (work) |"
    )
    lines += ["", header, "|---|" + "---:|" * 10]
    for w in s.per_worker:
        lines.append(
            f"| {w['worker']} | {w['claimed']:,} | {w['submitted']:,} | {len(w['batches_created'])} | "
            f"{len(w['ingested'])} | {w['results']:,} | {w['submit_seconds']:,.1f} | {w['collect_seconds']:,.1f} | "
            f"{w['idle_seconds']:,.1f} | {w['start_rss'] / MiB:,.0f} MiB | {w['peak_rss'] / MiB:,.0f} MiB |"
        )
    c = s.checked
    lines += ["", f"Database {c['db_bytes'] / MiB:,.0f} MiB; {c['batches']} batches; tasks {c['tasks_by_status']}; "
              f"billed ${c['cost_usd']:,.2f} ({c['billed']:,} responses). Emulator: {s.emulator_cpu:,.1f} CPU s "
              f"during the work ({s.emulator_cpu / s.work_seconds:.0%} of one core), peak RSS "
              f"{s.emulator_peak / MiB:,.0f} MiB. Exactly-once check: "
              f"{'passed' if not c['problems'] else '; '.join(c['problems'][:10])}.", ""]  # fmt: skip
    return "\n".join(lines)


def rows(scenarios: list[Scenario]) -> list[Row]:
    """Table rows: each multi-worker run against the one-worker run of the same size, when there is one."""
    single = {s.tasks: s for s in scenarios if s.workers == 1}
    out = []
    for s in scenarios:
        base = single.get(s.tasks) if s.workers > 1 else None
        peak = max(w["peak_rss"] - w["start_rss"] for w in s.per_worker)  # above where it started, as elsewhere
        notes = [
            f"{s.workers} worker(s): work {s.work_seconds:,.0f} s + enqueue {s.phases['enqueue']:,.0f} s",
            f"peak RSS per worker {', '.join(format(w['peak_rss'] / MiB, ',.0f') for w in s.per_worker)} MiB",
            f"database {s.checked['db_bytes'] / MiB:,.0f} MiB, {s.checked['batches']} batches",
            f"emulator {s.emulator_cpu / s.work_seconds:.0%} of a core",
            "exactly once: " + ("ok" if not s.checked["problems"] else f"{len(s.checked['problems'])} PROBLEM(S)"),
        ]
        if base is not None:
            notes.append(f"baseline: 1 worker, {base.end_to_end:,.0f} s")
        base_rate = None if base is None else s.tasks / base.end_to_end
        case = f"postgresql: {s.workers} worker(s), end to end"
        out.append(Row("backfill", case, s.tasks, "tasks/s", s.tasks / s.end_to_end, base_rate, peak, notes))
    return out


def run_scenarios(plan: list[tuple[int, int]]) -> list[Scenario]:
    postgres_url = postgres_server_url()
    if postgres_url is None:
        print("backfill: no PostgreSQL reachable, skipped", file=sys.stderr)
        return []
    done = []
    with moto_server() as s3:
        for tasks, workers in plan:
            print(f"backfill: {tasks:,} tasks, {workers} worker(s) ...", file=sys.stderr, flush=True)
            done.append(scenario(tasks, workers, postgres_url, s3))
            print(describe(done[-1]), file=sys.stderr, flush=True)
    return done


def run(quick: bool = False) -> list[Row]:
    plan = [(2_000, 4), (20_000, 4), (20_000, 1)] if quick else [(100_000, 4), (1_000_000, 4), (1_000_000, 1)]
    scenarios = run_scenarios(plan)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "backfill.md").write_text("\n".join(describe(s) for s in scenarios))
    return rows(scenarios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backfill", description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, action="append", help="backfill size (repeatable)")
    parser.add_argument("--workers", type=int, action="append", help="worker processes (repeatable)")
    parser.add_argument("--plan", help="runs in this order instead, e.g. 100000x4,1000000x4,1000000x1")
    args = parser.parse_args(argv)
    plan = [(t, w) for t in args.tasks or [20_000] for w in args.workers or [4, 1]]
    if args.plan:
        plan = [(int(t), int(w)) for t, w in (run.split("x") for run in args.plan.split(","))]
    scenarios = run_scenarios(plan)
    from benchmarks._harness import markdown_table

    print(markdown_table(rows(scenarios)))
    for s in scenarios:
        print(describe(s))
    return 0 if all(not s.checked["problems"] for s in scenarios) else 1


if __name__ == "__main__":
    # Through the package: the worker processes find the cases by module name, which __main__ is not.
    from benchmarks.backfill import main as package_main

    sys.exit(package_main())
