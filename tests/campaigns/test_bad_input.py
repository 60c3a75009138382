"""Bad input never escapes as an unhandled traceback and never takes valid work down with it.

Only :class:`~nightbatch.errors.NightbatchError` subclasses may escape, naming the file and line (task
files, task-type config) or the batch and custom_id (result lines). A bad result line leaves its own task
retryable and the rest of its batch is ingested.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlmodel import col

from nightbatch.collect.ingest import IngestReport, ingest_batch, results_key
from nightbatch.collect.poll import collect_step, open_batches
from nightbatch.db.models import Batch, BatchStatus, Task, TaskStatus, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.errors import ConfigError, TaskFileError
from nightbatch.queue.enqueue import enqueue_jsonl
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types
from tests.pipeline.conftest import enqueue_examples

# -- task-type config files ------------------------------------------------------------------------

_TYPE = b'[task_types.a]\nmodel = "claude-haiku-4-5"\nmax_tokens = 1\n'


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"task_types = 3\n", id="task_types-not-a-table"),
        pytest.param(b"[[task_types]]\nmodel = 'x'\n", id="task_types-an-array"),
        pytest.param(b'tools = "x"\n' + _TYPE, id="tools-not-a-table"),
        pytest.param(_TYPE + b'system = "\xff"\n', id="not-utf8"),
        pytest.param(_TYPE + b'system_file = "a\\u0000b"\n', id="nul-in-a-path"),
    ],
)
def test_a_broken_task_type_file_is_a_config_error_naming_it(tmp_path: Path, content: bytes):
    path = tmp_path / "types.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"types\.toml"):
        load_task_types(path)


# -- task files ------------------------------------------------------------------------------------

_VALID = '{"text": "fine"}'


@pytest.mark.parametrize(
    ("line", "broken_on"),
    [
        pytest.param("[" * 100_000 + "]" * 100_000, {"sqlite", "postgresql"}, id="deeply-nested"),
        pytest.param('{"payload": {}, "deadline": "0001-01-01T00:00:00+01:00"}', {"sqlite", "postgresql"}, id="y1"),
        pytest.param('{"payload": {}, "deadline": "9999-12-31T23:59:59-01:00"}', {"sqlite", "postgresql"}, id="y9999"),
        pytest.param('{"text": "a\\u0000b"}', {"postgresql"}, id="nul-in-payload"),
        pytest.param('{"payload": {}, "key": "k\\u0000"}', {"postgresql"}, id="nul-in-key"),
        pytest.param('{"payload": {}, "priority": 3000000000}', {"postgresql"}, id="priority-over-int32"),
    ],
)
def test_a_task_file_is_enqueued_whole_or_refused_naming_its_line(
    request: pytest.FixtureRequest, engine: Engine, db_backend: str, line: str, broken_on: set[str]
):
    del request, db_backend, broken_on  # the cases once broke on these backends; all are refused cleanly now
    refused: TaskFileError | None = None
    try:
        enqueue_jsonl(engine, [_VALID, line], default_task_type="t", source_name="tasks.jsonl")
    except TaskFileError as exc:
        refused = exc
    expected = 2 if refused is None else 0
    assert refused is None or str(refused).startswith("tasks.jsonl:2: ")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Task)).scalar_one() == expected


# -- result lines ----------------------------------------------------------------------------------

Lines = list[dict[str, Any]]


def _succeeded(lines: Lines) -> dict[str, Any]:
    return next(line for line in lines if line["result"]["type"] == "succeeded")


def _set(path: tuple[str, ...], value: Any) -> Callable[[Lines], str]:
    def mutate(lines: Lines) -> str:
        target = _succeeded(lines)
        custom_id = str(target["custom_id"])
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return custom_id

    return mutate


def _drop_usage(lines: Lines) -> str:
    del _succeeded(lines)["result"]["message"]["usage"]
    return str(_succeeded(lines)["custom_id"])


def _duplicate(lines: Lines) -> str:
    lines.append(dict(lines[0]))
    return ""


def ingest_corrupted(
    services: Services, emulator: EmulatorServer, mutate: Callable[[Lines], str]
) -> tuple[int, int | None, str]:
    """Submit 3 tasks, let their batch end, corrupt its downloaded results.

    Returns the batch id, and the task id and custom_id of the corrupted line (None, "" if none is).
    """
    enqueue_examples(services.engine, per_type=3)
    submit_step(services, task_types=["ticket_triage"])
    emulator.advance(3600)
    ((batch_id, provider_id),) = open_batches(services)
    emulator.faults.fail("batch_results", "api_error", times=3, retry_after=0.01)  # poll, no download
    collect_step(services)
    emulator.faults.clear()
    with services.client.result_lines(provider_id) as stream:
        lines = [json.loads(line) for line in stream]
    bad = mutate(lines)
    with services.engine.begin() as conn:
        ended = conn.execute(select(col(Batch.ended_at)).where(col(Batch.id) == batch_id)).scalar_one()
        assert ended is not None
        key = results_key(batch_id, ended.date())
        services.store.put_bytes(key, b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        conn.execute(update(Batch).where(col(Batch.id) == batch_id).values(results_uri=services.store.uri(key)))
        bad_task = conn.execute(select(col(Task.id)).where(col(Task.custom_id) == bad)).scalar_one_or_none()
    return batch_id, bad_task, bad


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_set(("result", "message", "usage", "input_tokens"), "12"), id="usage-count-a-string"),
        pytest.param(_set(("result",), "succeeded"), id="result-not-an-object"),
        pytest.param(_set(("result", "message", "content"), "text"), id="content-not-a-list"),
        # A model without a price row is no longer a bad line (issue 14): it is booked unpriced, see
        # tests/collect/test_ledger_lineup.py.
        pytest.param(_drop_usage, id="missing-usage"),
        pytest.param(_duplicate, id="duplicate-line"),
    ],
)
def test_a_bad_result_line_leaves_its_task_retryable_and_the_rest_is_ingested(
    services: Services, emulator: EmulatorServer, mutate: Callable[[Lines], str]
):
    batch_id, bad_task, bad = ingest_corrupted(services, emulator, mutate)
    report: IngestReport = ingest_batch(services, batch_id)
    with services.engine.connect() as conn:
        status = conn.execute(select(col(Batch.status)).where(col(Batch.id) == batch_id)).scalar_one()
        tasks = {r.id: r for r in conn.execute(select(Task).where(col(Task.task_type) == "ticket_triage"))}
        billed = conn.execute(
            select(func.count()).select_from(UsageRecord).where(col(UsageRecord.purpose) == "task")
        ).scalar_one()
    assert status == BatchStatus.INGESTED
    good = [t for task_id, t in tasks.items() if task_id != bad_task]
    assert {t.status for t in good} == {TaskStatus.SUCCEEDED}
    assert billed == len(good)
    if bad_task is not None:  # the bad line's task is retryable, with its error, and the report names it
        assert any(bad in line for line in report.bad_lines), report
        assert tasks[bad_task].status == TaskStatus.QUEUED
        assert tasks[bad_task].error_type
