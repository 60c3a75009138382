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
runs one size.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    ROOT,
    EmulatorProcess,
    MiB,
    Row,
    _reset_peak,
    _status_kib,
    postgres_server_url,
    run_child,
    scratch_database,
    scratch_folder,
)

TASK_TYPES = """
[settings]
max_attempts = 3

[task_types.ticket_triage]
model = "claude-haiku-4-5"
max_tokens = 8
system = \"\"\"Classify the support ticket.
Labels: billing, bug, feature_request, account, shipping, other
Answer with the label only.\"\"\"
template = "Ticket: {text}"
checks = { labels = ["billing", "bug", "feature_request", "account", "shipping", "other"] }

[task_types.date_extraction]
model = "claude-haiku-4-5"
max_tokens = 32
system = \"\"\"Extract the date from the text.
Output: JSON {"date": "YYYY-MM-DD"} or {"date": null} when there is none.\"\"\"
template = "{text}"
output = "json"
output_schema = { type = "object", required = ["date"], properties = { date = { type = ["string", "null"] } } }
"""
TRIAGE_SHARE = 0.8
FILES = 4  # each source is split in this many files / objects
BUCKET = "nb-backfill"
# The emulator, time-scaled: a 100k batch runs 100 waves of 1,000 requests, a minute each (1 h 40 of
# provider time), after a minute in its queue; 1,200 simulated seconds pass per real second (5 s).
EMULATOR = {"time_scale": 1200.0, "batch_concurrency": 1000, "wave_seconds": 60.0, "batch_start_delay_seconds": 60.0}
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
WORK_DEADLINE_SECONDS = 3600
IDLE_SECONDS = 0.5  # a worker with nothing to do polls again after this (batches take ~5 s)
_ASKS = [
    ("I was charged twice for my billing cycle", "billing"),
    ("the export button crashes the app", "bug"),
    ("please add a dark mode to the dashboard", "feature_request"),
    ("I cannot reset the password of my account", "account"),
    ("my parcel has not arrived, shipping is late", "shipping"),
    ("who do I talk to about a partnership", "other"),
]
_PRODUCTS = ["Pylon Desk", "Pylon Sync", "Pylon Mobile", "Pylon Analytics", "Pylon API"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]  # fmt: skip


# -- the workload -----------------------------------------------------------------------------------


def write_workload(folder: Path, n: int, seed: int = 20) -> tuple[Path, list[Path]]:
    """The triage files (``folder/local``, kept local) and the date files (to go to S3); n lines in all."""
    rng = random.Random(seed)
    local, remote = folder / "local", folder / "remote"
    local.mkdir()
    remote.mkdir()
    triage = round(n * TRIAGE_SHARE)
    for part in range(FILES):
        with (local / f"ticket_triage-{part}.jsonl").open("w") as out:
            for i in range(part, triage, FILES):
                ask, label = rng.choice(_ASKS)
                payload = {"ticket_id": i, "text": f"[{rng.choice(_PRODUCTS)}] {ask}. Ticket {i}.",
                           "expected_label": label}  # fmt: skip
                out.write(json.dumps({"key": f"triage-{i}", "payload": payload}) + "\n")
    for part in range(FILES):
        with (remote / f"date_extraction-{part}.jsonl").open("w") as out:
            for i in range(part, n - triage, FILES):
                y, m, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
                text = f"Order {i} was delivered on {_MONTHS[m - 1]} {d}, {y}."
                out.write(json.dumps({"key": f"date-{i}", "payload": {"text": text}}) + "\n")
    return local, sorted(remote.iterdir())


def _s3_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session(
        aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=FAKE_AWS["AWS_DEFAULT_REGION"],
    ).client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))


def upload(files: list[Path], endpoint: str, prefix: str) -> str:
    """Put ``files`` under ``s3://BUCKET/prefix/`` on the moto server; returns the prefix URL."""
    client = _s3_client(endpoint)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    for path in files:
        client.upload_file(str(path), BUCKET, f"{prefix}/{path.name}")
    return f"s3://{BUCKET}/{prefix}/"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server over HTTP in this process (werkzeug's request log off); yields its endpoint."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _services(url: str, store: str, config: str, base_url: str | None, worker: str, s3: str | None = None) -> Any:
    from nightbatch.config import Settings
    from nightbatch.db import make_engine
    from nightbatch.pricing import load_price_table
    from nightbatch.services import Services
    from nightbatch.storage import open_store
    from nightbatch.tasktypes import load_task_types

    settings = Settings(anthropic_api_key=None, s3_endpoint_url=s3)
    return Services(settings=settings, engine=make_engine(url), store=open_store(store),
                    registry=load_task_types(Path(config)), prices=load_price_table(), worker=worker,
                    base_url=base_url)  # fmt: skip


def case_enqueue(url: str, store: str, config: str, sources: list[list[str]], s3: str) -> dict[str, Any]:
    """Enqueue each (source, task type) (child process); seconds and tasks per source."""
    from nightbatch.sources import enqueue_source

    services = _services(url, store, config, None, "enqueue", s3)
    out: dict[str, Any] = {"sources": []}
    for source, task_type in sources:
        started = time.perf_counter()
        summary = enqueue_source(services, source, default_task_type=task_type)
        if summary.errors:
            raise RuntimeError(f"{source}: {summary.errors}")
        out["sources"].append({"source": source, "tasks": summary.inserted, "seconds": time.perf_counter() - started})
    services.close()
    return out


# -- a worker ---------------------------------------------------------------------------------------


@dataclass
class WorkerLog:
    """What one worker did; sent back to the driver as JSON."""

    worker: str
    claimed: int = 0
    submitted: int = 0
    released: int = 0
    failed_before_sending: int = 0
    batches_created: list[int] = field(default_factory=list)
    ingested: list[int] = field(default_factory=list)
    results: int = 0
    submit_seconds: float = 0.0
    collect_seconds: float = 0.0
    idle_seconds: float = 0.0
    first_submit: float | None = None
    last_create: float | None = None
    first_ingest: float | None = None
    last_ingest: float | None = None
    done: float = 0.0
    start_rss: int = 0
    peak_rss: int = 0
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def submit_slot(path: str) -> Iterator[bool]:
    """The one submit slot, if free (an exclusive lock on ``path``): True when this worker holds it."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait_for_go(go: str, worker: str) -> None:
    Path(f"{go}.ready-{worker}").touch()
    while not Path(go).exists():
        time.sleep(0.01)


def case_worker(url: str, store: str, config: str, base_url: str, worker: str, limit: int, lock: str,
                go: str) -> dict[str, Any]:  # fmt: skip
    """One worker process: submit (when the slot is free) and collect, until every task has ended."""
    from dataclasses import asdict

    from nightbatch.collect.poll import collect_step
    from nightbatch.db.audit import tasks_queued, work_left
    from nightbatch.db.models import RunStatus
    from nightbatch.errors import RetryableProviderError
    from nightbatch.runs import finish_run, heartbeat, start_run
    from nightbatch.submit.chunks import submit_in_chunks

    services = _services(url, store, config, base_url, worker)
    run_id = start_run(services.engine, "backfill", {"worker": worker})
    log = WorkerLog(worker)
    _wait_for_go(go, worker)
    _reset_peak()  # the peak below is this worker's during the work, not its imports'
    log.start_rss = (_status_kib("VmRSS") or 0) * 1024
    deadline = time.monotonic() + WORK_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        heartbeat(services.engine, run_id)
        busy = False
        # As the flow does, submit only while tasks wait: an empty claim still scans the queue for claimable rows.
        with submit_slot(lock) as holding:
            if holding and tasks_queued(services.engine):
                started = time.time()
                try:
                    report = submit_in_chunks(services, limit=limit, run_id=run_id)
                except RetryableProviderError as exc:  # e.g. the queue cap's 429: its tasks went back
                    log.errors.append(f"submit: {exc}")
                    report = None
                log.submit_seconds += time.time() - started
                if report is not None and report.claimed:
                    busy = True
                    log.first_submit = log.first_submit or started
                    log.claimed += report.claimed
                    log.submitted += report.submitted_tasks
                    log.released += report.waiting_tasks
                    log.failed_before_sending += report.failed_tasks
                    log.batches_created += [b.batch_id for b in report.batches if b.provider_batch_id]
                    if report.batches:
                        log.last_create = time.time()
        started = time.time()
        collected = collect_step(services)
        log.collect_seconds += time.time() - started
        log.errors += collected.errors
        for ingested in collected.ingested:
            if ingested.already_ingested:
                continue
            busy = True
            log.ingested.append(ingested.batch_id)
            log.results += sum(ingested.outcomes.values())
            log.first_ingest = log.first_ingest or started
            log.last_ingest = time.time()
        if busy or collected.pilots_ended:
            continue
        if not work_left(services.engine):
            break
        idle = time.time()
        time.sleep(IDLE_SECONDS)
        log.idle_seconds += time.time() - idle
    log.done = time.time()
    log.peak_rss = (_status_kib("VmHWM") or 0) * 1024
    finish_run(services.engine, run_id, RunStatus.SUCCEEDED, {"claimed": log.claimed, "submitted": log.submitted})
    services.close()
    return asdict(log)


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


# -- the check --------------------------------------------------------------------------------------


def _emulator_ledger(base_url: str, provider_ids: list[str]) -> Iterator[dict[str, Any]]:
    import httpx2

    for provider_id in provider_ids:
        answer = httpx2.get(f"{base_url}/_emulator/ledger", params={"batch_id": provider_id}, timeout=600)
        answer.raise_for_status()
        yield from answer.json()["entries"]


def check(url: str, store_dir: str, base_url: str, tasks: int, workers: list[dict[str, Any]]) -> dict[str, Any]:
    """Nothing claimed, sent, billed or ingested twice (child process); the problems found, and counts."""
    from collections import Counter

    from sqlalchemy import func, select
    from sqlmodel import col

    from nightbatch import custom_ids
    from nightbatch.db import make_engine
    from nightbatch.db.audit import audit_queue, database_bytes
    from nightbatch.db.models import Batch, UsageRecord
    from nightbatch.pricing import Usage, load_price_table, price_usage
    from nightbatch.storage import open_store

    engine, store, prices = make_engine(url), open_store(store_dir), load_price_table()
    audit = audit_queue(engine)
    problems = list(audit.problems)
    # Each worker's own account: every claim ended sent, handed back or failed; batches ingested once each.
    claimed = sum(w["claimed"] for w in workers)
    accounted = sum(w["submitted"] + w["released"] + w["failed_before_sending"] for w in workers)
    if claimed != accounted:
        problems.append(f"{claimed:,} claims but {accounted:,} sent, handed back or failed: a claim was lost")
    sent = sum(w["submitted"] for w in workers)
    if sent != tasks:
        problems.append(f"{tasks:,} tasks but {sent:,} sent by the workers")
    ingested = Counter(b for w in workers for b in w["ingested"])
    problems += [f"batch {b} ingested {n} times by the workers" for b, n in ingested.items() if n > 1]
    with engine.connect() as conn:
        batches = dict(conn.execute(select(col(Batch.id), col(Batch.provider_batch_id)).where(
            col(Batch.purpose) == "task", col(Batch.provider_batch_id).is_not(None))).all())  # fmt: skip
        our_cost = conn.execute(select(func.coalesce(func.sum(col(UsageRecord.cost_pusd)), 0))).scalar_one()
        usage_rows = conn.execute(select(func.count()).select_from(UsageRecord)).scalar_one()
    problems += [f"batch {b} never ingested by a worker" for b in batches if b not in ingested]
    # The object store: each request in one manifest, each result in one output line (counts by task id).
    in_manifests: Counter[int] = Counter()
    for info in store.list("manifests/"):
        with store.open_read(info.key) as lines:
            for raw in lines:
                in_manifests[custom_ids.task_id(json.loads(raw)["custom_id"])] += 1
    in_outputs: Counter[int] = Counter()
    for info in store.list("outputs/"):
        with store.open_read(info.key) as lines:
            for raw in lines:
                in_outputs[int(json.loads(raw)["task_id"])] += 1
    problems += _duplicates(in_manifests, "sent in", "manifests") + _duplicates(in_outputs, "written to", "outputs")
    if len(in_manifests) != tasks or len(in_outputs) != tasks:
        problems.append(f"{tasks:,} tasks, {len(in_manifests):,} in manifests, {len(in_outputs):,} with an output")
    # The provider's ledger: each request billed once, and what it billed is what we booked.
    billed: Counter[str] = Counter()
    shapes: Counter[tuple[str, str, int, int, int, int, int]] = Counter()
    for entry in _emulator_ledger(base_url, sorted(batches.values())):
        billed[entry["custom_id"]] += 1
        shapes[(entry["model"], entry.get("service_tier") or "batch", entry["input_tokens"], entry["output_tokens"],
                entry.get("ephemeral_5m_input_tokens", 0), entry.get("ephemeral_1h_input_tokens", 0),
                entry.get("cache_read_input_tokens", 0))] += 1  # fmt: skip
    problems += [f"{c} billed {n} times by the provider" for c, n in billed.items() if n > 1][:20]
    if len(billed) != tasks or sum(billed.values()) != usage_rows:
        problems.append(f"{tasks:,} tasks, the provider billed {len(billed):,} requests ({sum(billed.values()):,} "
                        f"times), our ledger has {usage_rows:,} rows")  # fmt: skip
    theirs = 0
    for (model, tier, inp, out, w5, w1, read), n in shapes.items():
        usage = Usage(input_tokens=inp, output_tokens=out, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1,
                      cache_read_tokens=read)  # fmt: skip
        theirs += n * price_usage(prices, model, usage, "batch" if tier == "batch" else "standard").total_pusd
    if theirs != int(our_cost):
        problems.append(f"the provider billed {theirs} pUSD, our ledger says {our_cost} pUSD")
    size = database_bytes(engine)
    engine.dispose()
    return {"problems": problems, "tasks_by_status": audit.tasks_by_status, "batches": len(batches),
            "db_bytes": size, "cost_usd": float(our_cost) * 1e-12, "billed": sum(billed.values())}  # fmt: skip


def _duplicates(counts: Any, verb: str, where: str) -> list[str]:
    twice = [t for t, n in counts.items() if n > 1]
    return [f"{len(twice):,} task(s) {verb} more than one {where}, e.g. {twice[:5]}"] if twice else []


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
        peak = max(w["peak_rss"] for w in s.per_worker)
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
    args = parser.parse_args(argv)
    plan = [(t, w) for t in args.tasks or [20_000] for w in args.workers or [4, 1]]
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
