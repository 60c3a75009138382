"""Enqueueing from a source: a JSONL file, a folder of them, or every JSONL object under an S3 prefix.

Lines that name no task type take the given default or, failing that, the file's name when it is a
configured task type (``ticket_triage.jsonl`` holds ``ticket_triage`` tasks).

Each file is enqueued in its own transaction (all of it or, on a bad line, none of it), so a backfill
over many files is resumable: re-running it skips tasks already enqueued by their idempotency keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import col

from nightbatch.db.models import Task, TaskStatus
from nightbatch.errors import InputError
from nightbatch.queue.enqueue import EnqueueReport, enqueue_jsonl
from nightbatch.services import Services
from nightbatch.storage import open_store, open_uri

__all__ = ["EnqueueSummary", "default_task_type_for", "enqueue_source", "queued_count"]

_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson")


@dataclass
class EnqueueSummary:
    files: int = 0
    inserted: int = 0
    duplicates: int = 0
    reports: list[EnqueueReport] = field(default_factory=list)

    def add(self, report: EnqueueReport) -> None:
        self.files += 1
        self.inserted += report.inserted
        self.duplicates += report.duplicates
        self.reports.append(report)

    def describe(self) -> str:
        return f"enqueued {self.inserted} tasks from {self.files} file(s) ({self.duplicates} already queued)"


def _local_files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES))
    elif path.is_file():
        yield path
    else:
        raise InputError(f"source {path} does not exist")


def default_task_type_for(name: str, given: str | None, known: list[str] | None) -> str | None:
    if given is not None:
        return given
    stem = name.rsplit("/", 1)[-1].split(".", 1)[0]
    return stem if known and stem in known else None


def enqueue_source(services: Services, source: str, *, default_task_type: str | None) -> EnqueueSummary:
    """Enqueue every task file in ``source`` (a file, a folder, or ``s3://bucket/prefix``)."""
    summary = EnqueueSummary()
    known = services.registry.names() or None
    if source.startswith("s3://") and source.endswith(_SUFFIXES):
        with open_uri(source, endpoint_url=services.settings.s3_endpoint_url) as stream:
            summary.add(
                enqueue_jsonl(
                    services.engine,
                    stream,
                    default_task_type=default_task_type_for(source, default_task_type, known),
                    source_name=source,
                    task_types=known,
                )
            )
        return summary
    if source.startswith("s3://"):
        store = open_store(source, endpoint_url=services.settings.s3_endpoint_url, sse=services.settings.s3_sse)
        for info in store.list(""):
            if not info.key.endswith(_SUFFIXES):
                continue
            with store.open_read(info.key) as stream:
                summary.add(
                    enqueue_jsonl(
                        services.engine,
                        stream,
                        default_task_type=default_task_type_for(info.key, default_task_type, known),
                        source_name=store.uri(info.key),
                        task_types=known,
                    )
                )
        return summary
    for path in _local_files(Path(source)):
        summary.add(
            enqueue_jsonl(
                services.engine,
                path,
                default_task_type=default_task_type_for(path.name, default_task_type, known),
                source_name=str(path),
                task_types=known,
            )
        )
    return summary


def queued_count(services: Services, task_types: list[str] | None = None) -> int:
    """How many tasks wait in the queue (optionally of some types only)."""
    query = select(func.count()).select_from(Task).where(col(Task.status) == TaskStatus.QUEUED)
    if task_types:
        query = query.where(col(Task.task_type).in_(task_types))
    with services.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
