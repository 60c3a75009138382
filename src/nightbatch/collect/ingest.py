"""Ingesting one ended batch: archive the raw results, write output shards, update tasks and the ledger.

Three phases, each safe to repeat, so a crash anywhere is healed by ingesting again:

1. **Archive**: the provider's results JSONL is streamed through the SDK into the object store
   (``results/date=…/batch-<id>.jsonl``) and its URI recorded on the batch row. Results outlive the
   provider's 29-day retention, and later phases never need the provider again.
2. **Shards**: the archive is streamed in chunks; each succeeded result becomes one line of a
   Hive-partitioned output shard (``outputs/task_type=<t>/date=<d>/batch-<id>.jsonl``), one shard per task
   type per batch, published atomically when complete.
3. **Database**: in one transaction, every task of the batch is moved per the outcome policy
   (:mod:`nightbatch.collect.outcome`), pointing at its shard and line; one ``usage_record`` row per billed
   result carries its exact cost; the batch becomes ``ingested``. Updates are guarded by
   ``status = submitted AND batch_id = <this batch>``, so a second ingest changes nothing.

Memory stays flat in the batch size: lines are processed in chunks and written straight to spool files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, Any, BinaryIO

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlmodel import Session, col

from nightbatch.collect.outcome import decide
from nightbatch.db.models import Batch, BatchStatus, Task, TaskStatus, UsageRecord
from nightbatch.errors import StateError
from nightbatch.pricing import Usage, price_usage, pusd_to_usd
from nightbatch.services import Services
from nightbatch.tasktypes import TaskType

__all__ = ["IngestReport", "ingest_batch", "results_key", "shard_key"]

log = logging.getLogger(__name__)

CHUNK = 2000
INLINE_LIMIT = 512


def results_key(batch_id: int, day: date) -> str:
    return f"results/date={day:%Y-%m-%d}/batch-{batch_id}.jsonl"


def shard_key(task_type: str, day: date, batch_id: int) -> str:
    return f"outputs/task_type={task_type}/date={day:%Y-%m-%d}/batch-{batch_id}.jsonl"


@dataclass
class IngestReport:
    batch_id: int
    outcomes: dict[str, int] = field(default_factory=dict)
    cost_pusd: int = 0
    unknown_custom_ids: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    already_ingested: bool = False

    def count(self, key: str) -> None:
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


def archive_results(services: Services, batch: Batch) -> str:
    """Phase 1: stream the provider's results into the object store; returns the key."""
    assert batch.id is not None
    assert batch.provider_batch_id is not None
    day = (batch.ended_at or datetime.now(UTC)).date()
    key = results_key(batch.id, day)
    if batch.results_uri:
        return key
    with services.client.result_lines(batch.provider_batch_id) as lines, services.store.writer(key) as out:
        for line in lines:
            out.write(line.encode("utf-8"))
            out.write(b"\n")
    with services.engine.begin() as conn:
        conn.execute(update(Batch).where(col(Batch.id) == batch.id).values(results_uri=services.store.uri(key)))
    return key


def _chunks(stream: IO[bytes], report: IngestReport) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
                raise ValueError("not an object with a custom_id")
        except ValueError as exc:
            report.bad_lines.append(f"line {number}: {exc}")
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
        writer.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        counter[0] += 1
        return uri, counter[0]


def _inline(output: Any) -> Any:
    encoded = json.dumps(output, ensure_ascii=False)
    return output if len(encoded) <= INLINE_LIMIT else None


def _lookup_tasks(conn: Connection, batch_id: int, custom_ids: list[str]) -> dict[str, Any]:
    rows = conn.execute(
        select(
            col(Task.id),
            col(Task.custom_id),
            col(Task.task_type),
            col(Task.attempts),
            col(Task.status),
            col(Task.user_canceled),
            col(Task.model),
        ).where(col(Task.batch_id) == batch_id, col(Task.custom_id).in_(custom_ids))
    ).all()
    return {r.custom_id: r for r in rows}


def _billed_already(conn: Connection, batch_id: int, task_ids: list[int]) -> set[int]:
    rows = conn.execute(
        select(col(UsageRecord.task_id)).where(
            col(UsageRecord.batch_id) == batch_id, col(UsageRecord.task_id).in_(task_ids)
        )
    ).all()
    return {r[0] for r in rows}


_TASK_UPDATE = (
    update(Task)
    .where(
        col(Task.id) == bindparam("b_id"),
        col(Task.batch_id) == bindparam("b_batch"),
        col(Task.status) == TaskStatus.SUBMITTED,
    )
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        error_type=bindparam("b_error_type"),
        error_message=bindparam("b_error_message"),
        output_uri=bindparam("b_output_uri"),
        output_line=bindparam("b_output_line"),
        output_inline=bindparam("b_output_inline"),
        batch_id=bindparam("b_new_batch"),
        custom_id=bindparam("b_new_custom_id"),
        updated_at=bindparam("b_now"),
    )
)


def _type_or_none(services: Services, name: str) -> TaskType | None:
    return services.registry.get(name) if name in services.registry else None


def ingest_batch(services: Services, batch_id: int) -> IngestReport:
    """Ingest one ended batch (phases 1–3 of the module docstring). Ingesting twice changes nothing."""
    report = IngestReport(batch_id)
    with Session(services.engine, expire_on_commit=False) as session:
        found = session.get(Batch, batch_id)
    if found is None:
        raise StateError(f"batch {batch_id} does not exist")
    row: Batch = found
    if row.status == BatchStatus.INGESTED:
        report.already_ingested = True
        return report
    if row.status != BatchStatus.ENDED:
        raise StateError(f"batch {batch_id} is {row.status}, not ended: poll it first")
    key = archive_results(services, row)
    day = (row.ended_at or datetime.now(UTC)).date()
    now = datetime.now(UTC)
    max_attempts = services.settings.max_attempts
    with ExitStack() as stack, services.engine.begin() as conn:
        shards = _Shards(services, stack, batch_id, day)
        source = stack.enter_context(services.store.open_read(key))
        for chunk in _chunks(source, report):
            tasks = _lookup_tasks(conn, batch_id, [line["custom_id"] for line in chunk])
            billed = _billed_already(conn, batch_id, [t.id for t in tasks.values()])
            updates: list[dict[str, Any]] = []
            usage_rows: list[dict[str, Any]] = []
            for line in chunk:
                task = tasks.get(line["custom_id"])
                if task is None:
                    report.unknown_custom_ids.append(line["custom_id"])
                    continue
                if task.status != TaskStatus.SUBMITTED:
                    report.count("already_recorded")
                    continue
                result = line.get("result") or {}
                task_type = _type_or_none(services, task.task_type)
                decision = decide(
                    result,
                    attempts=task.attempts,
                    max_attempts=max_attempts,
                    user_canceled=bool(task.user_canceled),
                    task_type=task_type,
                )
                report.count(decision.status.value)
                output_uri = output_line = inline = None
                if decision.billed:
                    message = result.get("message") or {}
                    model = str(message.get("model") or task.model or row.model)
                    usage = Usage.from_api(message.get("usage") or {})
                    cost = price_usage(services.prices, model, usage, "batch")
                    report.cost_pusd += cost.total_pusd
                    output_uri, output_line = shards.append(
                        task.task_type,
                        {
                            "task_id": task.id,
                            "custom_id": task.custom_id,
                            "task_type": task.task_type,
                            "model": model,
                            "batch_id": row.provider_batch_id,
                            "passed": decision.status == TaskStatus.SUCCEEDED,
                            "output": decision.output,
                            "stop_reason": message.get("stop_reason"),
                            "usage": message.get("usage"),
                            "cost_usd": str(pusd_to_usd(cost.total_pusd)),
                        },
                    )
                    inline = _inline(decision.output)
                    if task.id not in billed:
                        usage_rows.append(
                            {
                                "task_id": task.id,
                                "batch_id": batch_id,
                                "run_id": row.run_id,
                                "model": model,
                                "service_tier": "batch",
                                "input_tokens": usage.input_tokens,
                                "output_tokens": usage.output_tokens,
                                "cache_write_5m_tokens": usage.cache_write_5m_tokens,
                                "cache_write_1h_tokens": usage.cache_write_1h_tokens,
                                "cache_read_tokens": usage.cache_read_tokens,
                                "price_version": services.prices.version,
                                "cost_pusd": cost.total_pusd,
                                "purpose": "task",
                                "created_at": now,
                            }
                        )
                requeued = decision.status == TaskStatus.QUEUED
                updates.append(
                    {
                        "b_id": task.id,
                        "b_batch": batch_id,
                        "b_status": decision.status,
                        "b_attempts": decision.attempts,
                        "b_error_type": decision.error_type,
                        "b_error_message": (decision.error_message or "")[:2000] or None,
                        "b_output_uri": output_uri,
                        "b_output_line": output_line,
                        "b_output_inline": inline,
                        "b_new_batch": None if requeued else batch_id,
                        "b_new_custom_id": None if requeued else task.custom_id,
                        "b_now": now,
                    }
                )
            if usage_rows:
                conn.execute(insert(UsageRecord), usage_rows)
            if updates:
                conn.execute(_TASK_UPDATE, updates)
        # Tasks the results never mentioned (a malformed line, a provider bug) must not stay submitted forever.
        missing = conn.execute(
            select(col(Task.id), col(Task.attempts)).where(
                col(Task.batch_id) == batch_id, col(Task.status) == TaskStatus.SUBMITTED
            )
        ).all()
        if missing:
            conn.execute(
                _TASK_UPDATE,
                [
                    {
                        "b_id": m.id,
                        "b_batch": batch_id,
                        "b_status": TaskStatus.FAILED if m.attempts >= max_attempts else TaskStatus.QUEUED,
                        "b_attempts": m.attempts,
                        "b_error_type": "missing_result",
                        "b_error_message": f"batch {row.provider_batch_id} returned no result for this task",
                        "b_output_uri": None,
                        "b_output_line": None,
                        "b_output_inline": None,
                        "b_new_batch": None,
                        "b_new_custom_id": None,
                        "b_now": now,
                    }
                    for m in missing
                ],
            )
            report.outcomes["missing_result"] = len(missing)
        stack.close()  # publish the shards before the transaction commits
        conn.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id)
            .values(status=BatchStatus.INGESTED, ingested_at=now, claimed_by=None, claimed_at=None)
        )
    if report.unknown_custom_ids or report.bad_lines:
        log.warning(
            "batch %s (%s): %d unknown custom_ids, %d unreadable lines",
            batch_id,
            row.provider_batch_id,
            len(report.unknown_custom_ids),
            len(report.bad_lines),
        )
    return report
