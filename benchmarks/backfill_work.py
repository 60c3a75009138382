"""The backfill benchmark's workload and its worker loop (each worker runs in a process of its own).

See :mod:`benchmarks.backfill` for what is measured. The workload: ticket triage in local JSONL files, date
extraction under an S3 prefix on moto. A worker: the backfill flow's steps in a loop, submitting when the
one submit slot is free and tasks are queued, collecting otherwise, until every task has ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    _reset_peak,
    _status_kib,
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
