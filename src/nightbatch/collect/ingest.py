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
   result carries its exact cost; what the usage shows of the group's batch-cache entry is recorded (a
   pilot's end moves its group from ``pilot_running`` on: :mod:`nightbatch.db.cache_entries`); the batch
   becomes ``ingested``. Updates are guarded by
   ``status = submitted AND batch_id = <this batch>``, so a second ingest changes nothing.

A calibration's batch (``purpose = calibration``) is ingested the same way, archived and its lines checked;
each probe becomes an attempt and a ledger row for the task its custom_id names, and no task changes
(:mod:`nightbatch.calibrate` scores the recorded probes).

Memory stays flat in the batch size: lines are processed in chunks and written straight to spool files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nightbatch import custom_ids, fastjson
from nightbatch.collect.archive import ResultsArchive, results_key
from nightbatch.collect.lines import line_problem
from nightbatch.collect.rows import ChunkRows, Shards, UsageShape, shard_key
from nightbatch.db import Connection
from nightbatch.db.cache_entries import record_batch_cache
from nightbatch.db.ingest_batches import load_batch, mark_ingested, record_results_uri
from nightbatch.db.ingest_lookup import ChunkTasks, unsettled_tasks
from nightbatch.db.ingest_writes import ChunkWriter, Statements, TaskResult, ingest_transaction, update_tasks
from nightbatch.db.models import Batch, BatchStatus, TaskStatus, UsagePurpose
from nightbatch.errors import StateError
from nightbatch.gcpause import gc_paused
from nightbatch.pipeline.downstream import Downstream
from nightbatch.pipeline.graph import StageGraph
from nightbatch.pricing import Usage
from nightbatch.services import Services

__all__ = ["IngestReport", "ingest_batch", "results_key", "shard_key"]

log = logging.getLogger(__name__)

CHUNK = 2000


@dataclass
class IngestReport:
    batch_id: int
    outcomes: dict[str, int] = field(default_factory=dict)
    cost_pusd: int = 0
    unpriced: dict[str, int] = field(default_factory=dict)
    """Billed responses booked without a cost (NULL, never $0) because their model has no price row, by model."""
    unknown_custom_ids: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    provider_batch_id: str | None = None
    already_ingested: bool = False
    cache_role: str | None = None  # "pilot" / "fanout" / None, as the batch was sent
    cache_state: str | None = None  # the group's batch-cache state after this batch (None: nothing learnt)
    stage_tasks: int = 0  # tasks enqueued by pipeline stages on this batch's results (nightbatch.pipeline)
    twins: int = 0  # de-duplicated tasks settled from their leader's result

    @property
    def pilot_ended(self) -> bool:
        """This batch was its group's pilot: the group's waiting tasks can go out now."""
        return self.cache_role == "pilot"

    def count(self, key: str) -> None:
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


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
            custom_id = custom_ids.named_in(raw)
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


def ingest_batch(services: Services, batch_id: int) -> IngestReport:
    """Ingest one ended batch (phases 1–3 of the module docstring). Ingesting twice changes nothing."""
    report = IngestReport(batch_id)
    found = load_batch(services.engine, batch_id)
    if found is None:
        raise StateError(f"batch {batch_id} does not exist")
    row: Batch = found
    report.provider_batch_id = row.provider_batch_id
    report.cache_role = row.cache_role
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
    (:class:`~nightbatch.db.ingest_writes.ChunkWriter`): each chunk's tasks are looked up *before* the previous
    chunk's rows are written, so a line repeating one of the previous chunk's is caught by ``in_flight``,
    not by the lookup.
    """
    assert row.id is not None
    now = datetime.now(UTC)
    day = (row.ended_at or now).date()
    priced: dict[UsageShape, tuple[Usage, int | None]] = {}
    with ExitStack() as publishing, ingest_transaction(services.engine) as conn:
        shards = Shards(services, publishing, row.id, day)
        # Stage tasks of succeeded results are enqueued on this connection, whenever no write is in flight
        # on it, so they commit with the results (nightbatch.pipeline.downstream).
        downstream = Downstream.start(conn, StageGraph.of(services.registry), row.id)
        with ChunkWriter(conn, now) as writer:  # never leaves the transaction with a write in flight
            decided: ChunkRows | None = None
            in_flight: set[str] = set()
            for chunk in _chunks(lines, report):
                writer.wait()
                downstream.flush(conn, now)
                found = ChunkTasks.read(conn, row, chunk)
                if decided is not None:
                    writer.submit(decided.usage, decided.attempts, decided.updates)
                decided = ChunkRows(services, row, shards, report, priced, downstream if downstream.active else None)
                _decide_chunk(row, chunk, found, decided, report, in_flight)
                in_flight = {line["custom_id"] for line in chunk}
            if decided is not None:
                writer.submit(decided.usage, decided.attempts, decided.updates)
            writer.wait()
        downstream.settle_twins(conn, row.id, now)
        downstream.flush(conn, now)
        report.stage_tasks, report.twins = downstream.enqueued, len(downstream.twins)
        archived = archive.publish()
        if archived is not None:
            record_results_uri(conn, row.id, archived)
        _settle_missing(conn, Statements.of(conn.dialect), row, report, services.settings.max_attempts, now)
        publishing.close()  # publish the shards before the transaction commits
        # What the usage shows of the group's batch-cache entry; a pilot's end moves its group on (in this
        # transaction, so a crash leaves the pilot either un-ingested with its group waiting, or both done).
        state = record_batch_cache(conn, row, now)
        report.cache_state = None if state is None else str(state)
        mark_ingested(conn, row.id, now)


def _decide_chunk(row: Batch, chunk: list[dict[str, Any]], found: ChunkTasks, rows: ChunkRows, report: IngestReport,
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
        if row.purpose == UsagePurpose.ORPHAN:
            if custom_id in found.shadowed and custom_id not in found.recorded:
                rows.orphan(found.shadowed[custom_id], line)
            continue
        if row.purpose == UsagePurpose.CALIBRATION:
            if custom_id not in found.shadowed:
                report.unknown_custom_ids.append(custom_id)  # not a probe of a task we have: nothing to score
            elif custom_id in found.recorded:
                report.count("already_recorded")
            else:
                rows.calibration(found.shadowed[custom_id], line)
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
    assert row.id is not None
    missing = unsettled_tasks(conn, row.id)
    if not missing:
        return
    updates = []
    for m in missing:
        problem = report.problems.get(m.custom_id) if m.custom_id is not None else None
        updates.append(TaskResult(
            id=m.id, batch=row.id,
            status=TaskStatus.FAILED if m.attempts >= max_attempts else TaskStatus.QUEUED,
            attempts=m.attempts, error_type="bad_result" if problem else "missing_result",
            error_message=f"batch {row.provider_batch_id}: {problem}" if problem
            else f"batch {row.provider_batch_id} returned no result for this task",
            output_uri=None, output_line=None, output_inline=None,
            new_batch=None, new_custom_id=None, route=m.route_model,
        ))  # fmt: skip
    update_tasks(conn, statements, updates, now)
    report.outcomes["missing_result"] = len(missing)
