"""Putting tasks on the queue, idempotently.

Every task has an idempotency key (given, or derived from its type and payload, see
:func:`nightbatch.queue.taskfile.default_key`) and the key is unique in the ``task`` table. Inserts are
``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING``: enqueueing a key that is already there changes
nothing and is reported, never raised. The existing task is left exactly as it is (whatever its payload
or status), so re-running yesterday's file after a crash is always safe. A key already there for a
*different* task (another payload or type) is a conflict: counted and named in the report, and replaced
only when asked (``replace``, and only while the task is still ``queued``).

A task file is enqueued all or nothing: it is streamed, validated line by line and inserted in chunks,
all inside one transaction that is rolled back at the first bad line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nightbatch.build.template import check_fields
from nightbatch.db import Engine
from nightbatch.db.models import utcnow
from nightbatch.db.task_inserts import insert_task, inserting_tasks
from nightbatch.errors import InputError
from nightbatch.queue.taskfile import TaskFileReader, TaskSource, TaskSpec, canonical_json, make_task_spec

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EnqueueReport",
    "EnqueueResult",
    "TypeCounts",
    "enqueue",
    "enqueue_jsonl",
    "template_check",
]

DEFAULT_CHUNK_SIZE = 2000
CONFLICT_KEYS_SHOWN = 20
MAX_CHUNK_BYTES = 8 * 2**20  # a chunk of big payloads is cut short: memory stays bounded by bytes too


@dataclass(frozen=True)
class EnqueueResult:
    """What :func:`enqueue` did: ``inserted`` is False when a task with ``key`` already existed."""

    task_id: int
    inserted: bool
    key: str


@dataclass(frozen=True)
class TypeCounts:
    """Tasks of one type in a file, and how many of them were new."""

    tasks: int
    inserted: int

    @property
    def duplicates(self) -> int:
        """Tasks whose key was already queued, or appeared earlier in the same file."""
        return self.tasks - self.inserted


@dataclass(frozen=True)
class EnqueueReport:
    """What :func:`enqueue_jsonl` did with one file."""

    source: str
    lines_read: int
    tasks: int
    inserted: int
    by_task_type: Mapping[str, TypeCounts] = field(default_factory=dict)
    conflicts: int = 0
    """Keys already there for a *different* task (payload or type): reported, not silently "queued"."""
    conflict_keys: list[str] = field(default_factory=list)
    """The first of those keys (at most ``CONFLICT_KEYS_SHOWN``)."""
    replaced: int = 0
    """Conflicting tasks still ``queued`` that took the new definition (``replace=True``)."""

    @property
    def duplicates(self) -> int:
        """Tasks not inserted because their key was already queued or repeated in the file."""
        return self.tasks - self.inserted


def enqueue(
    engine: Engine,
    task_type: str,
    payload: dict[str, Any],
    *,
    key: str | None = None,
    priority: int = 0,
    deadline: datetime | None = None,
    model_override: str | None = None,
    source: str | None = None,
) -> EnqueueResult:
    """Queue one task unless a task with the same idempotency key exists; either way, return its id.

    Without ``key``, the key is derived from ``task_type`` and the canonical JSON of ``payload``.
    A malformed task raises :class:`~nightbatch.errors.InputError`.
    """
    spec = make_task_spec(
        task_type, payload, key=key, priority=priority, deadline=deadline, model_override=model_override
    )
    task_id, inserted = insert_task(engine, spec, source=source, now=utcnow())
    return EnqueueResult(task_id=task_id, inserted=inserted, key=spec.key)


def _encoded_chunks(
    specs: Iterable[TaskSpec], encode: Callable[[TaskSpec], str], max_rows: int, max_bytes: int
) -> Iterator[tuple[list[TaskSpec], str]]:
    """Chunks of at most ``max_rows`` rows and about ``max_bytes``: (the tasks, JSON array of rows)."""
    chunk: list[TaskSpec] = []
    rows: list[str] = []
    size = 0
    for spec in specs:
        rows.append(encode(spec))
        chunk.append(spec)
        size += len(rows[-1])
        if len(rows) >= max_rows or size >= max_bytes:
            yield chunk, f"[{','.join(rows)}]"
            chunk, rows, size = [], [], 0
    if rows:
        yield chunk, f"[{','.join(rows)}]"


def enqueue_jsonl(
    engine: Engine,
    stream_or_path: TaskSource,
    *,
    default_task_type: str | None = None,
    source_name: str | None = None,
    task_types: Container[str] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    check: Callable[[TaskSpec], None] | None = None,
    replace: bool = False,
) -> EnqueueReport:
    """Enqueue every task of a JSONL task file, all or nothing.

    ``stream_or_path`` is a path or any iterable of ``str``/``bytes`` lines (an open file; for S3,
    ``body.iter_lines()``). The file is streamed: at most ``chunk_size`` tasks (and ~8 MiB of them) are in
    memory at once.
    ``source_name`` names the file in errors and in ``task.source`` (default: the path). With
    ``task_types``, a line naming a type not in it is an error. The first bad line raises
    :class:`~nightbatch.errors.TaskFileError` and nothing from the file is enqueued. Keys already queued,
    and keys repeated within the file, count as duplicates. ``check`` vets each task further (see
    :func:`template_check`); a task it refuses is a bad line like any other. A key already there for a
    different task is a conflict, counted and named in the report; with ``replace`` a conflicting task
    that is still ``queued`` takes the file's definition (never one claimed, in flight or finished).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    reader = TaskFileReader(
        stream_or_path,
        default_task_type=default_task_type,
        source_name=source_name,
        task_types=task_types,
        check=check,
    )
    seen: Counter[str] = Counter()
    inserted: Counter[str] = Counter()
    conflicts: list[str] = []
    replaced = 0
    now = utcnow()
    with inserting_tasks(engine, source=reader.source_name, now=now, encode=canonical_json) as inserter:
        for chunk, rows in _encoded_chunks(reader, inserter.encode, chunk_size, MAX_CHUNK_BYTES):
            seen.update(spec.task_type for spec in chunk)
            done = inserter.insert(chunk, rows, replace=replace)
            inserted.update(done.inserted_types)
            conflicts += done.conflicts
            replaced += done.replaced
    return EnqueueReport(
        source=reader.source_name,
        lines_read=reader.lines_read,
        tasks=sum(seen.values()),
        inserted=sum(inserted.values()),
        by_task_type={t: TypeCounts(tasks=n, inserted=inserted[t]) for t, n in sorted(seen.items())},
        conflicts=len(conflicts),
        conflict_keys=conflicts[:CONFLICT_KEYS_SHOWN],
        replaced=replaced,
    )


def template_check(templates: Mapping[str, str]) -> Callable[[TaskSpec], None]:
    """A ``check`` for :func:`enqueue_jsonl`: every field a task's type template names must be in its payload.

    ``templates`` maps task types to their templates; types it does not list pass unchecked.
    """

    def check(spec: TaskSpec) -> None:
        template = templates.get(spec.task_type)
        if template is not None:
            try:
                check_fields(template, spec.payload)
            except InputError as exc:
                raise InputError(f"task type {spec.task_type!r}: {exc}") from None

    return check
