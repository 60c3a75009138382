"""Enqueueing from a source: a JSONL file, a folder of them, or every JSONL object under an S3 prefix.

Lines that name no task type take the given default or, failing that, the file's name when it is a
configured task type (``ticket_triage.jsonl`` holds ``ticket_triage`` tasks).

Each file is enqueued in its own transaction (all of it or, on a bad line, none of it), so a backfill
over many files is resumable: re-running it skips tasks already enqueued by their idempotency keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from nightbatch.db.progress import queued_tasks
from nightbatch.errors import InputError
from nightbatch.queue.enqueue import EnqueueReport, enqueue_jsonl, template_check
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
    errors: list[str] = field(default_factory=list)
    """One line per file refused whole (``FILE:LINE: what is wrong``); the other files were enqueued."""
    conflicts: int = 0
    """Keys already queued for a different task (payload or type); see ``conflict_keys`` and ``replaced``."""
    conflict_keys: list[str] = field(default_factory=list)
    replaced: int = 0

    def add(self, report: EnqueueReport) -> None:
        self.files += 1
        self.inserted += report.inserted
        self.duplicates += report.duplicates - report.conflicts
        self.conflicts += report.conflicts
        self.conflict_keys += report.conflict_keys[: max(0, 20 - len(self.conflict_keys))]
        self.replaced += report.replaced
        self.reports.append(report)

    def describe(self) -> str:
        text = f"enqueued {self.inserted} tasks from {self.files} file(s) ({self.duplicates} already queued)"
        if self.conflicts:
            more = ", ..." if self.conflicts > len(self.conflict_keys) else ""
            text += (f"; {self.conflicts} key(s) already used by a different task: "
                     f"{', '.join(self.conflict_keys)}{more}")  # fmt: skip
            if self.replaced:
                text += f"; {self.replaced} queued one(s) replaced"
            if self.conflicts > self.replaced:
                text += "; the others left as they were (--replace replaces tasks still queued)"
        if self.errors:
            text += f"; {len(self.errors)} file(s) refused: " + "; ".join(self.errors)
        return text

    def attempt(self, enqueue_one: Callable[[], EnqueueReport]) -> None:
        """Enqueue one file; a bad file is refused whole and noted, and the others still go in."""
        try:
            self.add(enqueue_one())
        except InputError as exc:
            self.errors.append(str(exc))


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


def enqueue_source(
    services: Services, source: str, *, default_task_type: str | None, replace: bool = False
) -> EnqueueSummary:
    """Enqueue every task file in ``source`` (a file, a folder, or ``s3://bucket/prefix``).

    Each file goes in whole or not at all; a refused file is named in ``errors`` and the rest go on.
    """
    summary = EnqueueSummary()
    known = services.registry.names() or None
    # Every payload is checked against its type's template here, before a task is spent on a typo.
    check = template_check({name: services.registry.get(name).template for name in services.registry.names()})

    def one(name: str, open_lines: Callable[[], Any]) -> None:
        def run() -> EnqueueReport:
            with open_lines() as lines:
                return enqueue_jsonl(
                    services.engine,
                    lines,
                    default_task_type=default_task_type_for(name, default_task_type, known),
                    source_name=name,
                    task_types=known,
                    check=check,
                    replace=replace,
                )

        summary.attempt(run)

    endpoint = services.settings.s3_endpoint_url
    if source.startswith("s3://") and source.endswith(_SUFFIXES):
        one(source, lambda: open_uri(source, endpoint_url=endpoint))
    elif source.startswith("s3://"):
        store = open_store(source, endpoint_url=endpoint, sse=services.settings.s3_sse)
        for info in store.list(""):
            if info.key.endswith(_SUFFIXES):
                one(store.uri(info.key), partial(store.open_read, info.key))
    else:
        for path in _local_files(Path(source)):
            one(str(path), partial(path.open, "rb"))
    return summary


def queued_count(services: Services, task_types: list[str] | None = None) -> int:
    """How many tasks wait in the queue (optionally of some types only)."""
    return queued_tasks(services.engine, task_types)
