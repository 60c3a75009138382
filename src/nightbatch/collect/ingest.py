"""Ingesting one ended batch: archive the raw results, write output shards, update tasks and the ledger.

Three phases, each safe to repeat, so a crash anywhere is healed by ingesting again:

1. **Archive**: the provider's results JSONL is copied into the object store as it streams in
   (``results/date=…/batch-<id>.jsonl``, :mod:`nightbatch.collect.archive`) and its URI recorded on the
   batch row. Results outlive the provider's 29-day retention; a second ingest reads the archive.
2. **Shards**: the same stream is processed in chunks of lines as it arrives; each succeeded result becomes
   one line of a Hive-partitioned output shard (``outputs/task_type=<t>/date=<d>/batch-<id>.jsonl``), one
   shard per task type per batch, published atomically when complete.
3. **Database**: in one transaction, every task of the batch is moved per the outcome policy
   (:mod:`nightbatch.collect.outcome`), pointing at its shard and line; one ``usage_record`` row per billed
   result carries its exact cost; the batch becomes ``ingested``. Updates are guarded by
   ``status = submitted AND batch_id = <this batch>``, so a second ingest changes nothing.

Memory stays flat in the batch size: lines are processed in chunks and written straight to spool files.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, BinaryIO

from sqlalchemy import Connection, select, update
from sqlmodel import Session, col

from nightbatch import fastjson
from nightbatch.collect.archive import ResultsArchive, results_key
from nightbatch.collect.bulk import ChunkWriter, Statements, update_tasks
from nightbatch.collect.lines import line_problem
from nightbatch.collect.lookup import ChunkTasks, FoundTask
from nightbatch.collect.outcome import check_output, decide
from nightbatch.db.models import Batch, BatchStatus, Task, TaskStatus, UsagePurpose
from nightbatch.errors import StateError
from nightbatch.gcpause import gc_paused
from nightbatch.pricing import Usage, price_usage, pusd_to_usd
from nightbatch.quality.checks import CheckResult
from nightbatch.services import Services
from nightbatch.tasktypes import TaskType

__all__ = ["IngestReport", "ingest_batch", "results_key", "shard_key"]

log = logging.getLogger(__name__)

CHUNK = 2000
INLINE_LIMIT = 512


def shard_key(task_type: str, day: date, batch_id: int) -> str:
    return f"outputs/task_type={task_type}/date={day:%Y-%m-%d}/batch-{batch_id}.jsonl"


@dataclass
class IngestReport:
    batch_id: int
    outcomes: dict[str, int] = field(default_factory=dict)
    cost_pusd: int = 0
    unknown_custom_ids: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    provider_batch_id: str | None = None
    already_ingested: bool = False

    def count(self, key: str) -> None:
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


_CUSTOM_ID = re.compile(rb'"custom_id"\s*:\s*"([A-Za-z0-9_-]{1,64})"')


def _chunks(stream: Iterator[bytes], report: IngestReport) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            line = fastjson.loads(raw)
            if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
                raise ValueError("not an object with a custom_id")
        except ValueError as exc:
            # A line cut short still names its request: the task then gets this reason, not "missing".
            named = _CUSTOM_ID.search(raw)
            custom_id = named.group(1).decode() if named else None
            where = f"custom_id {custom_id}" if custom_id else f"line {number}"
            report.bad_lines.append(f"batch {report.provider_batch_id} {where}: unreadable line ({exc})")
            if custom_id is not None:
                report.problems.setdefault(custom_id, f"unreadable result line ({exc})")
            continue
        chunk.append(line)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Shards:
    """One spooling writer per task type, opened on first use, published when the ExitStack closes."""

    def __init__(self, services: Services, stack: ExitStack, batch_id: int, day: date) -> None:
        self._services, self._stack, self._batch_id, self._day = services, stack, batch_id, day
        self._open: dict[str, tuple[BinaryIO, str, list[int]]] = {}

    def append(self, task_type: str, record: dict[str, Any]) -> tuple[str, int]:
        if task_type not in self._open:
            key = shard_key(task_type, self._day, self._batch_id)
            writer = self._stack.enter_context(self._services.store.writer(key, content_type="application/jsonl"))
            self._open[task_type] = (writer, self._services.store.uri(key), [0])
        writer, uri, counter = self._open[task_type]
        writer.write(fastjson.dumps_line(record))
        counter[0] += 1
        return uri, counter[0]


def _inline(output: Any) -> str | None:
    """``output`` as a JSON column stores it (JSON text), when short enough to keep inline; else None."""
    if output is None or (isinstance(output, str) and len(output) + 2 > INLINE_LIMIT):
        return None  # a string's JSON is at least two characters longer than the string
    if len(json.dumps(output, ensure_ascii=False)) > INLINE_LIMIT:
        return None
    return json.dumps(output)  # exactly what SQLAlchemy's JSON type would have stored


def _type_or_none(services: Services, name: str) -> TaskType | None:
    return services.registry.get(name) if name in services.registry else None


_UsageShape = tuple[Any, ...]


def _usage_shape(model: str, usage: dict[str, Any]) -> _UsageShape:
    """Everything :meth:`Usage.from_api` reads from a (checked) usage object, as a hashable key."""
    get, creation = usage.get, usage.get("cache_creation")
    split = (
        None
        if creation is None
        else (creation.get("ephemeral_5m_input_tokens"), creation.get("ephemeral_1h_input_tokens"))
    )
    return (model, get("input_tokens"), get("output_tokens"), get("cache_read_input_tokens"),
            get("cache_creation_input_tokens"), split)  # fmt: skip


class _Rows:
    """The rows one chunk of results adds: task updates, usage (ledger) rows and attempt rows."""

    def __init__(self, services: Services, batch: Batch, shards: _Shards, report: IngestReport,
                 priced: dict[_UsageShape, tuple[Usage, int]]) -> None:  # fmt: skip
        self.services, self.batch, self.shards, self.report = services, batch, shards, report
        self.updates: list[dict[str, Any]] = []
        self.usage: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self._priced = priced  # shared by the chunks of one ingest

    def bill(self, task: FoundTask, message: dict[str, Any], purpose: UsagePurpose) -> tuple[str, int]:
        """One ledger row for a billed result; returns (model, cost in picodollars)."""
        model = str(message.get("model") or task.model or self.batch.model)
        raw = message.get("usage") or {}
        shape = _usage_shape(model, raw)
        known = self._priced.get(shape)
        if known is None:  # the results of a batch share few usage shapes: read and price each once
            usage = Usage.from_api(raw)
            known = self._priced[shape] = (usage, price_usage(self.services.prices, model, usage, "batch").total_pusd)
        usage, cost = known
        self.report.cost_pusd += cost
        self.usage.append({
            "task_id": task.id, "batch_id": self.batch.id, "run_id": self.batch.run_id, "model": model,
            "service_tier": "batch", "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cache_write_5m_tokens": usage.cache_write_5m_tokens, "cache_write_1h_tokens": usage.cache_write_1h_tokens,
            "cache_read_tokens": usage.cache_read_tokens, "price_version": self.services.prices.version,
            "cost_pusd": cost, "purpose": purpose,
        })  # fmt: skip
        return model, cost

    def attempt(self, task: FoundTask, custom_id: str, model: str, purpose: UsagePurpose, result_type: str,
                check: CheckResult | None, output: Any) -> None:  # fmt: skip
        self.attempts.append({
            "task_id": task.id, "task_type": task.task_type, "attempt": task.attempts, "model": model,
            "purpose": purpose, "batch_id": self.batch.id, "custom_id": custom_id, "calibration_id": None,
            "result_type": result_type, "check_passed": None if check is None else check.passed,
            "check_reason": None if check is None else check.reason, "output": _inline(output),
        })  # fmt: skip

    def routine(self, task: FoundTask, line: dict[str, Any]) -> None:
        """A result for the task's own request: decide its fate, bill it, write its shard line."""
        result = line.get("result") or {}
        task_type = _type_or_none(self.services, task.task_type)
        message = result.get("message") or {}
        model = str(message.get("model") or task.model or self.batch.model)
        decision = decide(
            result,
            attempts=task.attempts,
            max_attempts=self.services.settings.max_attempts,
            user_canceled=bool(task.user_canceled),
            task_type=task_type,
            model=model,
            payload=task.payload,
        )
        self.report.count("escalated" if decision.escalate_to else decision.status.value)
        output_uri = output_line = inline = None
        if decision.billed:
            model, cost = self.bill(task, message, UsagePurpose.TASK)
            passed = decision.check is not None and decision.check.passed
            output_uri, output_line = self.shards.append(task.task_type, {
                "task_id": task.id, "custom_id": task.custom_id, "task_type": task.task_type, "model": model,
                "batch_id": self.batch.provider_batch_id, "passed": passed,
                "output": decision.output, "stop_reason": message.get("stop_reason"), "usage": message.get("usage"),
                "cost_usd": str(pusd_to_usd(cost)),
            })  # fmt: skip
            inline = _inline(decision.output)
        self.attempt(task, line["custom_id"], model, UsagePurpose.TASK, str(result.get("type")), decision.check,
                     decision.output)  # fmt: skip
        requeued = decision.status == TaskStatus.QUEUED
        self.updates.append({
            "b_id": task.id, "b_batch": self.batch.id, "b_status": decision.status, "b_attempts": decision.attempts,
            "b_error_type": decision.error_type, "b_error_message": (decision.error_message or "")[:2000] or None,
            "b_output_uri": output_uri, "b_output_line": output_line, "b_output_inline": inline,
            "b_new_batch": None if requeued else self.batch.id,
            "b_new_custom_id": None if requeued else task.custom_id,
            "b_route": decision.escalate_to or task.route_model,
        })  # fmt: skip

    def orphan(self, task: FoundTask, line: dict[str, Any]) -> None:
        """A result of a batch no task points at any more: billed all the same, so it is recorded and reported."""
        result = line.get("result") or {}
        model = self.batch.model
        if result.get("type") == "succeeded":
            model, _ = self.bill(task, result.get("message") or {}, UsagePurpose.ORPHAN)
        self.report.count("orphan")
        self.attempt(task, line["custom_id"], model, UsagePurpose.ORPHAN, str(result.get("type")), None, None)

    def shadow(self, task: FoundTask, line: dict[str, Any]) -> None:
        """A shadow result (the same task on the next rung up): measured and billed, the task untouched."""
        result = line.get("result") or {}
        message = result.get("message") or {}
        task_type = _type_or_none(self.services, task.task_type)
        model = str(message.get("model") or self.batch.model)
        output, check = None, None
        if result.get("type") == "succeeded":
            output, check = check_output(message, task_type, task.payload)
            model, _ = self.bill(task, message, UsagePurpose.SHADOW)
        self.report.count("shadow")
        self.attempt(task, line["custom_id"], model, UsagePurpose.SHADOW, str(result.get("type")), check, output)


def ingest_batch(services: Services, batch_id: int) -> IngestReport:
    """Ingest one ended batch (phases 1–3 of the module docstring). Ingesting twice changes nothing."""
    report = IngestReport(batch_id)
    with Session(services.engine, expire_on_commit=False) as session:
        found = session.get(Batch, batch_id)
    if found is None:
        raise StateError(f"batch {batch_id} does not exist")
    row: Batch = found
    report.provider_batch_id = row.provider_batch_id
    if row.status == BatchStatus.INGESTED:
        report.already_ingested = True
        return report
    if row.status != BatchStatus.ENDED:
        raise StateError(f"batch {batch_id} is {row.status}, not ended: poll it first")
    archive = ResultsArchive(services, row)
    with ExitStack() as stack, gc_paused():
        lines = archive.open(stack)
        try:
            _ingest(services, row, lines, archive, report)
        except Exception:
            archive.salvage()  # the results outlive this failure, whatever it was
            raise
    if report.unknown_custom_ids or report.bad_lines:
        log.warning(
            "batch %s (%s): %d unknown custom_ids, %d unreadable lines",
            batch_id,
            row.provider_batch_id,
            len(report.unknown_custom_ids),
            len(report.bad_lines),
        )
    return report


def _ingest(
    services: Services, row: Batch, lines: Iterator[bytes], archive: ResultsArchive, report: IngestReport
) -> None:
    """Phases 2 and 3 over the stream of result lines, in one transaction.

    A software pipeline, so that the database writes one chunk while this process decides the next
    (:class:`~nightbatch.collect.bulk.ChunkWriter`): each chunk's tasks are looked up *before* the previous
    chunk's rows are written, so a line repeating one of the previous chunk's is caught by ``in_flight``,
    not by the lookup.
    """
    assert row.id is not None
    now = datetime.now(UTC)
    day = (row.ended_at or now).date()
    priced: dict[_UsageShape, tuple[Usage, int]] = {}
    with ExitStack() as publishing, services.engine.begin() as conn:
        shards = _Shards(services, publishing, row.id, day)
        with ChunkWriter(conn, now) as writer:  # never leaves the transaction with a write in flight
            decided: _Rows | None = None
            in_flight: set[str] = set()
            for chunk in _chunks(lines, report):
                writer.wait()
                found = ChunkTasks.read(conn, row, chunk)
                if decided is not None:
                    writer.submit(decided.usage, decided.attempts, decided.updates)
                decided = _Rows(services, row, shards, report, priced)
                _decide_chunk(row, chunk, found, decided, report, in_flight)
                in_flight = {line["custom_id"] for line in chunk}
            if decided is not None:
                writer.submit(decided.usage, decided.attempts, decided.updates)
            writer.wait()
        archived = archive.publish()
        if archived is not None:
            conn.execute(update(Batch).where(col(Batch.id) == row.id).values(results_uri=archived))
        _settle_missing(conn, Statements.of(conn.dialect), row, report, services.settings.max_attempts, now)
        publishing.close()  # publish the shards before the transaction commits
        conn.execute(
            update(Batch)
            .where(col(Batch.id) == row.id)
            .values(status=BatchStatus.INGESTED, ingested_at=now, claimed_by=None, claimed_at=None)
        )


def _decide_chunk(row: Batch, chunk: list[dict[str, Any]], found: ChunkTasks, rows: _Rows, report: IngestReport,
                  in_flight: set[str]) -> None:  # fmt: skip
    """Each line of a chunk: checked, matched to its task, and turned into rows (or reported).

    Uses no connection (the previous chunk may be being written on it). ``in_flight``: the previous
    chunk's custom_ids, whose rows the lookups could not see yet.
    """
    seen = set(in_flight)
    for line in chunk:
        custom_id = line["custom_id"]
        problem = "duplicate result line" if custom_id in seen else line_problem(rows.services, line, row.model)
        seen.add(custom_id)
        if problem is not None:
            report.bad_lines.append(f"batch {row.provider_batch_id} custom_id {custom_id}: {problem}")
            if custom_id not in report.problems:
                report.problems[custom_id] = problem
            continue
        if row.purpose == "orphan":
            if custom_id in found.shadowed and custom_id not in found.recorded:
                rows.orphan(found.shadowed[custom_id], line)
            continue
        if custom_id in found.shadowed:
            if custom_id in found.recorded:
                report.count("already_recorded")
            else:
                rows.shadow(found.shadowed[custom_id], line)
            continue
        task = found.tasks.get(custom_id)
        if task is None:
            # Not a request of this batch row (a batch adopted by the wrong row, say): what it billed is still
            # booked, against the task its custom_id names, as ``orphan`` usage, and reported.
            report.unknown_custom_ids.append(custom_id)
            if custom_id in found.strangers and custom_id not in found.recorded:
                rows.orphan(found.strangers[custom_id], line)
            continue
        if task.status != TaskStatus.SUBMITTED or custom_id in found.recorded:
            report.count("already_recorded")
            continue
        rows.routine(task, line)


def _settle_missing(
    conn: Connection, statements: Statements, row: Batch, report: IngestReport, max_attempts: int, now: datetime
) -> None:
    """Tasks the results never mentioned (a malformed line, a provider bug) must not stay submitted forever."""
    missing = conn.execute(
        select(col(Task.id), col(Task.attempts), col(Task.route_model), col(Task.custom_id)).where(
            col(Task.batch_id) == row.id, col(Task.status) == TaskStatus.SUBMITTED
        )
    ).all()
    if not missing:
        return
    updates = []
    for m in missing:
        problem = report.problems.get(m.custom_id)
        updates.append({
            "b_id": m.id, "b_batch": row.id,
            "b_status": TaskStatus.FAILED if m.attempts >= max_attempts else TaskStatus.QUEUED,
            "b_attempts": m.attempts, "b_error_type": "bad_result" if problem else "missing_result",
            "b_error_message": f"batch {row.provider_batch_id}: {problem}" if problem
            else f"batch {row.provider_batch_id} returned no result for this task",
            "b_output_uri": None, "b_output_line": None, "b_output_inline": None,
            "b_new_batch": None, "b_new_custom_id": None, "b_route": m.route_model,
        })  # fmt: skip
    update_tasks(conn, statements, updates, now)
    report.outcomes["missing_result"] = len(missing)
