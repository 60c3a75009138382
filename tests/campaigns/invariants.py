"""What must hold after any crash, fault or race, once a healthy worker has finished the work.

:func:`check` compares three independent records: our database, the objects we wrote, and what the
emulated provider says it billed (its ledger). It returns violations as readable sentences; a campaign
collects them per run and prints the count (which must be 0).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlmodel import Session, col
from sqlmodel import select as sqlmodel_select

from nightbatch.db.models import (
    Batch,
    BatchStatus,
    CacheEntry,
    CacheState,
    Task,
    TaskStatus,
    TaskTwin,
    UsageRecord,
)
from nightbatch.emulator import LedgerEntry
from nightbatch.pricing import PriceTable, Usage, price_usage
from nightbatch.storage import ObjectStore

SETTLED_TASK = {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.QUEUED}
SETTLED_BATCH = {BatchStatus.INGESTED, BatchStatus.CREATE_FAILED}
OPEN_BATCH = {BatchStatus.PENDING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELING, BatchStatus.ENDED}


@dataclass
class Outcome:
    """What a finished run left behind, and what is wrong with it."""

    violations: list[str] = field(default_factory=list)
    tasks: Counter[str] = field(default_factory=Counter)
    orphans: int = 0
    billed: int = 0
    pilots: int = 0

    def fail(self, message: str) -> None:
        self.violations.append(message)


def expire_leases(engine: Engine, hours: float = 2) -> None:
    """Make every lease look lapsed: the worker holding it died long ago."""
    old = datetime.now(UTC) - timedelta(hours=hours)
    with engine.begin() as conn:
        conn.execute(update(Batch).where(col(Batch.claimed_at).is_not(None)).values(claimed_at=old))
        conn.execute(update(Task).where(col(Task.claimed_at).is_not(None)).values(claimed_at=old))


def open_work(engine: Engine) -> tuple[int, int]:
    """(tasks queued/claimed/submitted, batches not yet settled)."""
    with engine.connect() as conn:
        tasks = conn.execute(
            select(col(Task.id)).where(
                col(Task.status).in_([TaskStatus.QUEUED, TaskStatus.CLAIMED, TaskStatus.SUBMITTED])
            )
        ).all()
        batches = conn.execute(select(col(Batch.id)).where(col(Batch.status).in_(list(OPEN_BATCH)))).all()
    return len(tasks), len(batches)


def unrecorded_batches(engine: Engine, client: Any) -> int:
    """Provider batches our database does not know yet (issue 15: a late create of ours is recorded only
    once it has ended and its results prove it ours, so the campaigns keep going until none is left)."""
    with engine.connect() as conn:
        known = set(conn.execute(select(col(Batch.provider_batch_id))).scalars())
    return sum(1 for b in client.list_batches() if b.id not in known)


def _task_of(custom_id: str | None) -> int | None:
    if not custom_id or custom_id[:1] not in "ts":
        return None
    head = custom_id[1:].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _emulator_cost(prices: PriceTable, entry: LedgerEntry) -> int:
    usage = Usage(
        input_tokens=entry.input_tokens,
        output_tokens=entry.output_tokens,
        cache_write_5m_tokens=entry.ephemeral_5m_input_tokens,
        cache_write_1h_tokens=entry.ephemeral_1h_input_tokens,
        cache_read_tokens=entry.cache_read_input_tokens,
    )
    if entry.service_tier == "batch":
        return price_usage(prices, entry.model, usage, "batch").total_pusd
    return price_usage(prices, entry.model, usage, "standard").total_pusd


def _shard_lines(store: ObjectStore) -> Iterable[tuple[str, int, dict[str, object]]]:
    for info in store.list("outputs/"):
        with store.open_read(info.key) as stream:
            for number, raw in enumerate(stream, start=1):
                yield store.uri(info.key), number, json.loads(raw)


def check(
    engine: Engine,
    store: ObjectStore,
    billed: list[LedgerEntry],
    prices: PriceTable,
    *,
    max_attempts: int | None = None,
    errors_recorded: bool = False,
    settled: bool = True,
) -> Outcome:
    """Every invariant of docs/reliability.md, against our database, our objects and the provider's ledger.

    ``settled``: no task may be claimed or submitted and no batch still open. ``max_attempts``: no task
    was sent more often (attempts count sends, not claims: issue 15, item 5). ``errors_recorded``: every
    failed task, and every re-queued one that was tried, says why.
    """
    out = Outcome(billed=len(billed))
    with Session(engine) as session:
        tasks = list(session.exec(sqlmodel_select(Task)).all())
        batches = {b.id: b for b in session.exec(sqlmodel_select(Batch)).all()}
        usage = list(session.exec(sqlmodel_select(UsageRecord)).all())
        # A de-duplicated or reused task (nightbatch.db.twins) points at the line of the task that answered it.
        answered_by = {t.task_id: t.leader_task_id for t in session.exec(sqlmodel_select(TaskTwin)).all()}
    # 1. every task in exactly one settled state
    for task in tasks:
        out.tasks[str(task.status)] += 1
        if settled and task.status not in SETTLED_TASK:
            out.fail(f"task {task.id} left {task.status} (batch {task.batch_id})")
        if max_attempts is not None and task.attempts > max_attempts:
            out.fail(f"task {task.id} sent {task.attempts} times, over the limit of {max_attempts}")
        tried = task.attempts > 0 and task.status == TaskStatus.QUEUED
        if errors_recorded and (task.status == TaskStatus.FAILED or tried) and not task.error_type:
            out.fail(f"task {task.id} is {task.status} after {task.attempts} attempts with no error recorded")
    for batch in batches.values():
        if settled and batch.status not in SETTLED_BATCH:
            out.fail(f"batch {batch.id} ({batch.provider_batch_id}) left {batch.status}")
        if batch.purpose == "orphan":
            out.orphans += 1
            if not batch.error:
                out.fail(f"orphan batch {batch.provider_batch_id} recorded without saying why")
    # 2. no result written twice; every succeeded task points at its own line
    seen: Counter[str] = Counter()
    per_task: Counter[object] = Counter()
    located: dict[tuple[str | None, int | None], object] = {}
    for uri, number, line in _shard_lines(store):
        seen[str(line.get("custom_id"))] += 1
        per_task[line.get("task_id")] += 1
        located[uri, number] = line.get("task_id")
    for custom_id, n in seen.items():
        if n > 1:
            out.fail(f"result {custom_id} written {n} times to output shards")
    for task in tasks:
        if per_task[task.id] > 1:
            out.fail(f"task {task.id} has {per_task[task.id]} output lines")
        owner = located.get((task.output_uri, task.output_line))
        if task.status == TaskStatus.SUCCEEDED and owner != task.id and owner != answered_by.get(task.id):
            out.fail(f"task {task.id} succeeded but {task.output_uri}:{task.output_line} is not its line")
    # 3. everything the provider billed is in our ledger, once, at the same price
    by_provider = {b.provider_batch_id: b for b in batches.values() if b.provider_batch_id}
    ours: dict[tuple[int | None, int | None], list[UsageRecord]] = defaultdict(list)
    by_response = {u.response_id: u for u in usage if u.response_id}
    for u in usage:
        if u.batch_id is not None:
            ours[u.batch_id, u.task_id].append(u)
    matched: set[int] = set()
    task_bills: Counter[int] = Counter()
    for entry in billed:
        if entry.batch_id is None:
            found = by_response.get(entry.message_id)
            if found is None:
                out.fail(f"real-time response {entry.message_id} billed but not in our ledger")
            else:
                matched.add(id(found))
            continue
        known = by_provider.get(entry.batch_id)
        if known is None:
            out.fail(f"batch {entry.batch_id} billed {entry.custom_id} but is unknown to our database")
            continue
        task_id = _task_of(entry.custom_id)
        rows = ours.get((known.id, task_id), [])
        if not rows:
            out.fail(f"{entry.batch_id}/{entry.custom_id} billed but not in our ledger")
            continue
        matched.add(id(rows[0]))
        if known.purpose == "orphan" and rows[0].purpose != "orphan":
            out.fail(f"{entry.batch_id}/{entry.custom_id}: result of an orphan batch booked as {rows[0].purpose}")
        if rows[0].purpose == "task" and task_id is not None:
            task_bills[task_id] += 1
    for u in usage:
        if id(u) not in matched:
            out.fail(f"ledger row {u.id} (batch {u.batch_id}, task {u.task_id}) matches nothing the provider billed")
    ours_pusd = sum(u.cost_pusd for u in usage)
    theirs_pusd = sum(_emulator_cost(prices, e) for e in billed)
    if ours_pusd != theirs_pusd:
        out.fail(f"ledger cost {ours_pusd} pUSD != {theirs_pusd} pUSD billed by the provider")
    # 4. no task billed twice as a task (a second bill must be reported as an orphan)
    for task_id, n in task_bills.items():
        if n > 1:
            out.fail(f"task {task_id} billed {n} times as a task")
    _check_batch_cache(engine, batches, usage, out, settled=settled)
    return out


def _check_batch_cache(engine: Engine, batches: dict[int | None, Batch], usage: list[UsageRecord], out: Outcome, *,
                       settled: bool) -> None:  # fmt: skip
    """5. batch caching: no group left waiting for a pilot that has ended, no breakpoint sent to a cold group."""
    with Session(engine) as session:
        entries = list(session.exec(sqlmodel_select(CacheEntry)).all())
    for entry in entries:
        if entry.state != CacheState.PILOT_RUNNING:
            continue
        pilot = batches.get(entry.pilot_batch_id)
        if pilot is None and settled:
            out.fail(f"group {entry.model}/{entry.prefix_hash[:8]} waits for a pilot that has no batch row")
        elif pilot is not None and pilot.status == BatchStatus.INGESTED:
            out.fail(f"group {entry.model}/{entry.prefix_hash[:8]} still waits: its pilot {pilot.id} was ingested")
    cached: dict[int | None, int] = Counter()
    for u in usage:
        cached[u.batch_id] += u.cache_read_tokens + u.cache_write_5m_tokens + u.cache_write_1h_tokens
    out.pilots += sum(b.cache_role == "pilot" for b in batches.values())
    for batch in batches.values():
        if batch.cache_role != "fanout" or batch.provider_batch_id is None:
            continue
        # Sent with a breakpoint only after an earlier batch of its group was ingested showing the entry.
        warmed = [
            b for b in batches.values()
            if b.id != batch.id and (b.model, b.prefix_hash) == (batch.model, batch.prefix_hash)
            and b.ingested_at is not None and b.ingested_at <= batch.created_at and cached[b.id] > 0
        ]  # fmt: skip
        if not warmed:
            out.fail(f"batch {batch.id} sent with breakpoints to a cold group (no earlier batch wrote its prefix)")
