"""Concurrency campaign: several submit and collect workers at once on one large queue.

Threads stand in for worker processes: each has its own name, its own ``Services`` (and its own engine,
so its own connection pool) from :func:`tests.fixtures.services.make_services`. Three submitters claim
slices of the queue (a twentieth each) in rounds, two collectors poll and ingest, all at once, against
an emulator that ends a batch almost as soon as it is created (one wave per batch, an hour of provider
time per real second). Nothing fails at the provider, so each task must have gone out in exactly one
batch and be billed once, and each batch must have been ingested by exactly one collector.

Default: ~5k tasks; ``NIGHTBATCH_CAMPAIGN_SCALE=1``: 50k.

The campaign found that the emulator's results stream held its state lock from one chunk to the next,
so that a second client deadlocked it; the last test keeps that fixed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import anthropic
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from nightbatch.collect.poll import collect_step
from nightbatch.db import make_engine
from nightbatch.db.models import Batch, TaskAttempt, UsageRecord
from nightbatch.emulator import EmulatorConfig, EmulatorServer
from nightbatch.emulator.ids import derived_id
from nightbatch.queue.enqueue import enqueue_jsonl
from nightbatch.services import Services
from nightbatch.storage import LocalObjectStore, ObjectStore
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types
from tests.campaigns.harness import PRICES
from tests.campaigns.invariants import check, open_work
from tests.campaigns.workload import scale
from tests.fixtures.emulator import TEST_API_KEY
from tests.fixtures.services import make_services

SHORT_TYPE = """
[task_types.tag]
model = "claude-haiku-4-5"
max_tokens = 4
system = "Tag the ticket.\\nLabels: billing, bug, feature_request, account, other"
template = "{text}"
"""
SUBMITTERS, COLLECTORS = 3, 2
BATCHES = 20  # a submitter claims 1/20 of the queue per round: many batches, so the workers interleave
DEADLINE_SECONDS = 600


@dataclass
class Crew:
    """The workers' shared record of what they did."""

    claim: int
    ingested: Counter[int] = field(default_factory=Counter)
    claimed: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)


def _submitter(services: Services, crew: Crew) -> None:
    while not crew.done.is_set():
        report = submit_step(services, limit=crew.claim)
        with crew.lock:
            crew.claimed[services.worker] += report.claimed
        if not report.claimed:
            time.sleep(0.02)


def _collector(services: Services, crew: Crew) -> None:
    while not crew.done.is_set():
        report = collect_step(services)
        with crew.lock:
            crew.ingested.update(r.batch_id for r in report.ingested if not r.already_ingested)
            crew.failures += report.errors
        if open_work(services.engine) == (0, 0):
            crew.done.set()
        elif not report.ingested:
            time.sleep(0.02)


def _guarded(work: Callable[[Services, Crew], None], services: Services, crew: Crew) -> None:
    try:
        work(services, crew)
    except Exception as exc:  # a worker that dies is a finding; the others stop
        with crew.lock:
            crew.failures.append(f"{services.worker}: {type(exc).__name__}: {exc}")
        crew.done.set()


def _manifest_counts(store: ObjectStore) -> Counter[int]:
    """How many routine batch manifests each task's request appears in."""
    counts: Counter[int] = Counter()
    for info in store.list("manifests/"):
        with store.open_read(info.key) as lines:
            for raw in lines:
                counts[int(json.loads(raw)["custom_id"][1:].split("-", 1)[0])] += 1
    return counts


@pytest.mark.slow
def test_many_workers_at_once_claim_send_and_ingest_everything_exactly_once(
    db_url: str, db_backend: str, emulator: EmulatorServer, tmp_path: Path
):
    tasks = 50_000 if scale() >= 1 else 5_000
    emulator.reset(
        EmulatorConfig(
            seed=7,
            time_scale=3600.0,
            batch_concurrency=100_000,
            wave_seconds=1.0,
            batch_start_delay_seconds=0.0,
        )
    )
    config = tmp_path / "short.toml"
    config.write_text(SHORT_TYPE, encoding="utf-8")
    store = LocalObjectStore(tmp_path / "store")
    setup = make_engine(db_url)
    lines = (json.dumps({"text": f"I was charged twice, ticket {n}."}) for n in range(tasks))
    enqueue_jsonl(setup, lines, default_task_type="tag", source_name="tags.jsonl")
    crew = Crew(claim=tasks // BATCHES)
    workers: list[tuple[Callable[[Services, Crew], None], Services]] = []
    for role, count, work in (("submit", SUBMITTERS, _submitter), ("collect", COLLECTORS, _collector)):
        for n in range(count):
            services = make_services(make_engine(db_url), store, emulator.base_url, worker=f"{role}-{n}")
            services.registry = load_task_types(config)
            workers.append((work, services))
    threads = [threading.Thread(target=_guarded, args=(work, services, crew)) for work, services in workers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    crew.done.wait(DEADLINE_SECONDS)
    crew.done.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for _, services in workers:
        services.close()

    problems = list(crew.failures)
    outcome = check(setup, store, emulator.ledger.entries(), PRICES, max_attempts=1)
    problems += outcome.violations
    in_manifests = _manifest_counts(store)
    with setup.connect() as conn:
        usage = select(col(UsageRecord.task_id)).where(col(UsageRecord.purpose) == "task")
        billed = Counter(conn.execute(usage).scalars())
        attempts = conn.execute(select(func.count()).select_from(TaskAttempt)).scalar_one()
        batches = conn.execute(select(col(Batch.id)).where(col(Batch.purpose) == "task")).scalars().all()
    setup.dispose()
    problems += [f"task {t} went out in {n} batches" for t, n in in_manifests.items() if n != 1]
    problems += [f"task {t} billed {n} times" for t, n in billed.items() if n != 1]
    problems += [f"batch {b} ingested {n} times" for b, n in crew.ingested.items() if n != 1]
    problems += [f"batch {b} never ingested by a collector" for b in batches if b not in crew.ingested]
    if sum(crew.claimed.values()) != tasks:
        problems.append(f"{tasks} tasks, {sum(crew.claimed.values())} claims")
    if len(in_manifests) != tasks or len(billed) != tasks or attempts != tasks:
        problems.append(f"{tasks} tasks, {len(in_manifests)} sent, {len(billed)} billed, {attempts} attempts recorded")
    print(
        f"\nconcurrency [{db_backend}]: {tasks} tasks, {SUBMITTERS} submitters + {COLLECTORS} collectors, "
        f"{len(batches)} batches in {elapsed:.1f} s = {tasks / elapsed:,.0f} tasks/s end to end; "
        f"claimed per submitter {dict(crew.claimed)}; tasks {dict(outcome.tasks)}; problems {len(problems)}"
    )
    for problem in problems[:40]:
        print("  PROBLEM", problem[:600])
    assert not problems


def test_an_open_results_stream_does_not_hold_the_emulator_lock(
    anthropic_client: anthropic.Anthropic, emulator: EmulatorServer
):
    """A results download left open (a slow reader) must not stop every other call to the emulator."""
    request = {"model": "claude-haiku-4-5", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
    batch = anthropic_client.messages.batches.create(requests=[{"custom_id": "a", "params": request}])  # type: ignore[typeddict-item]
    emulator.advance(3600)
    workspace = derived_id("wrkspc", TEST_API_KEY)
    chunks = cast(Generator[bytes], emulator.state.result_chunks(*emulator.state.result_order(workspace, batch.id)))
    next(chunks)  # the server has sent the first chunk and waits for the client to read it
    other: list[bool] = []

    def another_call() -> None:
        other.append(emulator.state.lock.acquire(timeout=0.5))
        if other[-1]:
            emulator.state.lock.release()

    thread = threading.Thread(target=another_call)
    thread.start()
    thread.join()
    chunks.close()
    assert other == [True], "another call could not get the emulator's lock while a results stream was open"
