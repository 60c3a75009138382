"""Enqueueing: idempotent by key, files all or nothing, large files in bounded memory."""

from __future__ import annotations

import importlib
import io
import json
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col
from sqlmodel import select as sqlmodel_select

from nightbatch.db import Task, TaskStatus
from nightbatch.errors import InputError, TaskFileError
from nightbatch.queue import default_key, enqueue, enqueue_jsonl


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Task)).scalar_one())


def _tasks(engine: Engine) -> list[Task]:
    with Session(engine) as session:
        return list(session.exec(sqlmodel_select(Task).order_by(col(Task.id))))


def test_enqueue_inserts_once_then_reports_the_existing_task(engine: Engine) -> None:
    first = enqueue(engine, "classify", {"text": "a", "n": 1}, source="api")
    again = enqueue(engine, "classify", {"n": 1, "text": "a"})
    assert first.inserted
    assert not again.inserted
    assert again.task_id == first.task_id
    assert first.key == default_key("classify", {"text": "a", "n": 1})
    other_type = enqueue(engine, "summarise", {"text": "a", "n": 1})
    assert other_type.inserted
    assert _count(engine) == 2


def test_enqueue_with_explicit_key_and_fields(engine: Engine) -> None:
    deadline = datetime(2026, 12, 1, 6, tzinfo=UTC)
    result = enqueue(engine, "t", {"a": 1}, key="doc-1", priority=4, deadline=deadline, model_override="m")
    assert not enqueue(engine, "t", {"different": True}, key="doc-1").inserted  # same key: a no-op
    [task] = _tasks(engine)
    assert (task.id, task.idempotency_key, task.payload) == (result.task_id, "doc-1", {"a": 1})
    assert (task.priority, task.deadline, task.model_override) == (4, deadline, "m")
    assert (task.status, task.attempts) == (TaskStatus.QUEUED, 0)


def test_enqueue_rejects_malformed_tasks(engine: Engine) -> None:
    with pytest.raises(InputError):
        enqueue(engine, "t", {"x": {1, 2}})
    with pytest.raises(InputError):
        enqueue(engine, "", {})
    assert _count(engine) == 0


FILE = [
    '{"text": "one"}',
    "",
    '{"payload": {"text": "two"}, "task_type": "summarise", "priority": 2, "key": "k2"}',
    '{"text": "one"}',
    '{"payload": {"text": "three"}, "deadline": "2026-12-01T00:00:00Z", "model": "claude-haiku-4-5"}',
]


def test_enqueue_jsonl_counts_and_stores(engine: Engine) -> None:
    report = enqueue_jsonl(engine, FILE, default_task_type="classify", source_name="s3://b/tasks.jsonl")
    assert (report.lines_read, report.tasks, report.inserted, report.duplicates) == (5, 4, 3, 1)
    assert {t: (c.tasks, c.inserted, c.duplicates) for t, c in report.by_task_type.items()} == {
        "classify": (3, 2, 1),
        "summarise": (1, 1, 0),
    }
    tasks = _tasks(engine)
    assert [t.payload["text"] for t in tasks] == ["one", "two", "three"]
    assert {t.source for t in tasks} == {"s3://b/tasks.jsonl"}
    assert tasks[1].priority == 2
    assert tasks[2].deadline == datetime(2026, 12, 1, tzinfo=UTC)
    assert tasks[2].model_override == "claude-haiku-4-5"

    again = enqueue_jsonl(engine, FILE, default_task_type="classify", source_name="s3://b/tasks.jsonl")
    assert (again.tasks, again.inserted, again.duplicates) == (4, 0, 4)
    assert _count(engine) == 3


def test_enqueue_jsonl_reads_paths_and_streams(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"i": 1}\n{"i": 2}\n', encoding="utf-8")
    assert enqueue_jsonl(engine, path, default_task_type="t").source == str(path)
    assert enqueue_jsonl(engine, io.BytesIO(b'{"i": 3}\n'), default_task_type="t").inserted == 1
    assert enqueue_jsonl(engine, iter([b'{"i": 4}', b'{"i": 1}']), default_task_type="t").inserted == 1
    assert _count(engine) == 4


@pytest.mark.parametrize("bad_line", [7, 25])
def test_a_bad_line_enqueues_nothing_from_the_file(engine: Engine, bad_line: int) -> None:
    lines = [json.dumps({"i": i}) for i in range(1, 31)]
    lines[bad_line - 1] = '{"payload": {"i": 0}, "priority": "urgent"}'
    with pytest.raises(TaskFileError) as caught:
        # chunks of 5: several chunks were inserted before the bad line, and must be rolled back
        enqueue_jsonl(engine, lines, default_task_type="t", source_name="night.jsonl", chunk_size=5)
    assert str(caught.value).startswith(f"night.jsonl:{bad_line}: priority")
    assert _count(engine) == 0


def _lines(n: int) -> Iterator[str]:
    for i in range(n):
        yield f'{{"id": {i}, "text": "document number {i} with a little text to classify"}}\n'


def test_a_large_file_streams_in_bounded_memory(engine: Engine) -> None:
    n = 100_000
    tracemalloc.start()
    try:
        report = enqueue_jsonl(engine, _lines(n), default_task_type="classify", chunk_size=2000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.tasks, report.inserted) == (n, n)
    assert _count(engine) == n
    # 100k parsed tasks and their row dicts alone would take well over 100 MB; one chunk takes ~2 MB.
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_chunks_are_also_bounded_by_bytes(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("nightbatch.queue.enqueue")  # the package re-exports a function by that name
    monkeypatch.setattr(module, "MAX_CHUNK_BYTES", 3000)
    lines = [json.dumps({"i": i, "text": "x" * 1000}) for i in range(7)] + [json.dumps({"i": 0, "text": "x" * 1000})]
    report = enqueue_jsonl(engine, lines, default_task_type="t", chunk_size=1000)
    assert (report.tasks, report.inserted, report.duplicates) == (8, 7, 1)
    assert sorted(t.payload["i"] for t in _tasks(engine)) == list(range(7))


def test_bulk_and_single_enqueue_store_deadlines_alike(engine):
    """Claim order compares stored deadlines: both insert paths must store the same form."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from nightbatch.queue.enqueue import enqueue, enqueue_jsonl

    enqueue(engine, "t", {"n": 1}, deadline=datetime(2026, 12, 1, 6, 30, 15, tzinfo=UTC))
    enqueue_jsonl(engine, ['{"payload": {"n": 2}, "deadline": "2026-12-01T06:30:15Z"}'], default_task_type="t",
                  source_name="x.jsonl")  # fmt: skip
    with engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT CAST(deadline AS TEXT) FROM task ORDER BY id"))]
    assert stored[0] == stored[1]
