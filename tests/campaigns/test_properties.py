"""Bad input, property-based: whatever the input, only our own errors escape, naming the culprit.

* Task files: enqueued whole, or refused with ``TaskFileError`` at ``FILE:LINE`` and nothing enqueued.
  Over a folder, one bad file among good ones is named and skipped; the good ones go in.
* Task-type config files: they load, or raise ``ConfigError`` naming the file.
* Result lines malformed on their way out of the API (the emulator's ``malform_results`` fault): only
  ``NightbatchError`` escapes collecting; every bad line is named with its batch and custom_id; every
  other task of the batch is ingested; the bad line's task stays retryable (and succeeds when retried).

40 examples per property (400 with ``NIGHTBATCH_CAMPAIGN_SCALE=1``). The test database is shared by a
property's examples, so each example uses keys of its own and counts before and after; the
malformed-results property empties the tables between examples.
"""

from __future__ import annotations

import json
import string
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text
from sqlmodel import col

from nightbatch.collect.poll import collect_step
from nightbatch.db import metadata
from nightbatch.db.models import Task, TaskStatus
from nightbatch.emulator import EmulatorServer
from nightbatch.emulator.faults import MALFORMATIONS
from nightbatch.errors import ConfigError, NightbatchError, TaskFileError
from nightbatch.queue.enqueue import enqueue, enqueue_jsonl
from nightbatch.queue.taskfile import TaskFileReader
from nightbatch.services import Services
from nightbatch.sources import enqueue_source
from nightbatch.storage import LocalObjectStore
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types
from tests.campaigns.workload import scale
from tests.fixtures.emulator import TEST_EMULATOR_CONFIG
from tests.fixtures.services import make_services

SETTINGS = settings(
    max_examples=40 if scale() < 1 else 400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# -- strategies ------------------------------------------------------------------------------------


def _json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8
    )


_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = _json_values(st.text(max_size=12))
_storable = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=12)
payloads = st.dictionaries(st.text(max_size=8), json_values, max_size=3)
_timestamps = st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=25)
envelopes = st.fixed_dictionaries(
    {"payload": payloads},
    optional={
        "key": st.text(max_size=40) | json_values,
        "priority": st.integers(min_value=-(2**40), max_value=2**40) | json_values,
        "deadline": _timestamps | json_values,
        "task_type": st.sampled_from(["t", "ticket_triage", "", "x" * 300, "bad type!"]) | st.text(max_size=10),
        "model": st.sampled_from(["claude-haiku-4-5", "nope"]) | json_values,
        "extra": json_values,
    },
)
task_lines = st.one_of(
    envelopes.map(json.dumps),
    payloads.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=30),
    st.binary(max_size=20),
)


def _fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Task)).scalar_one())


def _as_bytes(line: str | bytes) -> bytes:
    return (line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line).replace(b"\n", b" ")


def _bad_at(lines: list[bytes], **reader: Any) -> int | None:
    """The number of the first line the task-file reader refuses, if any."""
    try:
        for _ in TaskFileReader(lines, **reader):
            pass
    except TaskFileError as exc:
        return exc.line
    return None


# -- task files ------------------------------------------------------------------------------------


@SETTINGS
@given(lines=st.lists(task_lines, min_size=1, max_size=6))
def test_a_task_file_goes_in_whole_or_is_refused_at_its_first_bad_line(engine: Engine, lines: list[str | bytes]):
    encoded = [_as_bytes(line) for line in lines]
    before = _count(engine)
    refused: TaskFileError | None = None
    try:
        report = enqueue_jsonl(engine, encoded, default_task_type="t", source_name="tasks.jsonl")
    except TaskFileError as exc:
        refused = exc
    if refused is not None:
        assert str(refused).startswith(f"tasks.jsonl:{refused.line}: ")
        assert refused.line == _bad_at(encoded, default_task_type="t")
        assert _count(engine) == before, "part of a refused file was enqueued"
    else:
        assert _count(engine) == before + report.inserted
        assert report.tasks == sum(1 for line in encoded if line.decode("utf-8").removeprefix("\ufeff").strip())


# Good tasks carry the field their type's template names ("Ticket: {text}"): enqueueing checks it (issue 15).
_good_payloads = st.builds(
    lambda p, text: {**p, "text": text}, st.dictionaries(_storable, _json_values(_storable), max_size=3), _storable
)
good_lines = st.one_of(
    st.builds(lambda p: {"payload": p}, _good_payloads),
    st.builds(lambda p, prio: {"payload": p, "priority": prio}, _good_payloads, st.integers(-1000, 1000)),
)
bad_lines = st.one_of(
    st.sampled_from(
        [
            b"not json",
            b"[1, 2]",
            b'{"payload": {}, "priority": "high"}',
            b'{"payload": {}, "deadline": "yesterday"}',
            b'{"payload": {}, "task_type": "no_such_type"}',
            b'{"payload": {}, "priority": 1e400}',
            b'{"text": NaN}',
            b"\xff\xfe",
            b'{"payload": {}, "priority": 3000000000}',
            b'{"text": "a\\u0000b"}',
        ]
    ),
    task_lines.map(_as_bytes),
).filter(lambda line: _bad_at([line], default_task_type="ticket_triage", task_types=["ticket_triage"]) == 1)


@SETTINGS
@given(
    good=st.lists(st.lists(good_lines, min_size=1, max_size=4), min_size=1, max_size=3),
    bad_file=st.lists(good_lines, max_size=3),
    bad_line=bad_lines,
    position=st.integers(min_value=0, max_value=3),
    bad_name=st.sampled_from(["0-first", "m-middle", "z-last"]),
)
def test_one_bad_file_in_a_folder_is_named_and_skipped_and_the_others_go_in(
    engine: Engine,
    good: list[list[dict[str, Any]]],
    bad_file: list[dict[str, Any]],
    bad_line: bytes,
    position: int,
    bad_name: str,
):
    run = _fresh("run")
    services = make_services(engine, LocalObjectStore(Path(tempfile.gettempdir()) / run), "http://127.0.0.1:9")
    good_keys: set[str] = set()
    with tempfile.TemporaryDirectory() as folder:
        for n, rows in enumerate(good):
            keyed = [{**row, "key": f"{run}-g{n}-{i}"} for i, row in enumerate(rows)]
            good_keys |= {row["key"] for row in keyed}
            (Path(folder) / f"g-{n}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keyed), encoding="utf-8")
        bad = [json.dumps({**row, "key": f"{run}-b-{i}"}).encode() for i, row in enumerate(bad_file)]
        position = min(position, len(bad))
        bad.insert(position, bad_line)
        bad_path = Path(folder) / f"{bad_name}.jsonl"
        bad_path.write_bytes(b"".join(line + b"\n" for line in bad))
        before = _count(engine)
        summary = enqueue_source(services, folder, default_task_type="ticket_triage")
    assert len(summary.errors) == 1, summary.errors
    assert summary.errors[0].startswith(f"{bad_path}:{position + 1}: "), summary.errors
    assert summary.files == len(good)
    assert summary.inserted == len(good_keys) == _count(engine) - before
    with engine.connect() as conn:
        keys = set(
            conn.execute(select(col(Task.idempotency_key)).where(col(Task.source).like(f"%{folder}%"))).scalars()
        )
    assert keys == good_keys, "the bad file was partly enqueued, or a good one was not"


# -- task-type config files ------------------------------------------------------------------------

_MODELS = st.sampled_from(["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-8", "gpt-4", ""])
_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "model": _MODELS | json_values,
    "max_tokens": st.integers(min_value=-5, max_value=2**40) | json_values,
    "system": st.text(max_size=20) | json_values,
    "system_file": st.sampled_from(["prompt.md", "missing.md", "../x", "/", "", "a\x00b", "bin.dat"]) | json_values,
    "documents": st.lists(st.sampled_from(["prompt.md", "missing.md", "bin.dat", "."]), max_size=2) | json_values,
    "tools": st.lists(st.sampled_from(["lookup", "nope"]), max_size=2) | json_values,
    "template": st.sampled_from(["{text}", "{", "}", "{a.b}", "{0}", "{text!r}", "{text:>{w}}"]) | json_values,
    "output": st.sampled_from(["text", "json", "xml"]) | json_values,
    "output_schema": st.sampled_from([{"type": "object"}, {"type": 3}, {"required": "x"}]) | json_values,
    "cache": st.fixed_dictionaries({}, optional={"mode": st.sampled_from(["auto", "5m", "2h"]), "prime": _scalars}),
    "context": st.fixed_dictionaries({}, optional={"keep_last_turns": _scalars, "max_documents": _scalars}),
    "escalation": st.lists(_MODELS, max_size=3) | json_values,
    "checks": st.fixed_dictionaries(
        {},
        optional={
            "labels": st.lists(st.text(max_size=5), max_size=3) | json_values,
            "regex": st.sampled_from(["^a$", "(", "[", "(?P<x>a)(?P<x>b)", "a{99999999999}"]) | st.text(max_size=8),
            "min_length": _scalars,
            "max_length": _scalars,
            "json_schema": st.sampled_from([{"type": "object"}, {"type": "nope"}, {"pattern": "("}]) | json_values,
            "callable": st.sampled_from(["os:getcwd", "x", ":", "no.such.module:f", "a:b:c"]) | st.text(max_size=6),
            "reference_field": _scalars,
        },
    )
    | json_values,
    "routing": st.fixed_dictionaries(
        {}, optional={"threshold": _scalars, "candidates": st.lists(_MODELS, max_size=2), "shadow_fraction": _scalars}
    ),
    "unknown_field": json_values,
}
task_type_tables = st.fixed_dictionaries(
    {"model": _FIELD_VALUES["model"], "max_tokens": _FIELD_VALUES["max_tokens"]},
    optional={k: v for k, v in _FIELD_VALUES.items() if k not in ("model", "max_tokens")},
)
_BARE = set(string.ascii_letters + string.digits + "_-")


def _toml_key(key: str) -> str:
    return key if key and set(key) <= _BARE else json.dumps(key, ensure_ascii=False)


def _toml(value: Any) -> str:
    """``value`` as a TOML inline value (``None`` has no TOML form: an empty table stands in)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return "{}"


def _document(types: dict[str, dict[str, Any]], tools: dict[str, Any], top: dict[str, Any]) -> bytes:
    parts = [f"{_toml_key(k)} = {_toml(v)}" for k, v in top.items()]
    for name, tool in tools.items():
        parts.append(f"[tools.{_toml_key(name)}]")
        parts += [f"{_toml_key(k)} = {_toml(v)}" for k, v in tool.items()] if isinstance(tool, dict) else []
    for name, table in types.items():
        parts.append(f"[task_types.{_toml_key(name)}]")
        parts += [f"{_toml_key(k)} = {_toml(v)}" for k, v in table.items()]
    return ("\n".join(parts) + "\n").encode("utf-8", "surrogatepass")


config_documents = st.one_of(
    st.builds(
        _document,
        st.dictionaries(st.sampled_from(["triage", "a b", "dates", ""]), task_type_tables, max_size=2),
        st.dictionaries(
            st.sampled_from(["lookup", "other"]),
            st.fixed_dictionaries({}, optional={"input_schema": json_values, "description": json_values}),
            max_size=2,
        ),
        st.dictionaries(st.sampled_from(["settings", "task_types", "tools", "x"]), json_values, max_size=1),
    ),
    st.binary(max_size=120),
    st.text(max_size=120).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@SETTINGS
@given(content=config_documents)
def test_a_task_type_file_loads_or_is_a_config_error_naming_it(content: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "types.toml"
        path.write_bytes(content)
        (Path(folder) / "prompt.md").write_text("Classify the ticket.", encoding="utf-8")
        (Path(folder) / "bin.dat").write_bytes(b"\xff\xfe\x00")
        refused: ConfigError | None = None
        try:
            registry = load_task_types(path)
        except ConfigError as exc:
            refused = exc
    event("refused" if refused else "loaded")
    if refused is not None:
        assert "types.toml" in str(refused), str(refused)
    else:
        assert all(registry.get(name).max_tokens >= 1 for name in registry.names())


# -- result lines ----------------------------------------------------------------------------------


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f'DELETE FROM "{table.name}"'))


@pytest.fixture
def clean_services(local_services: Services) -> Callable[[], Services]:
    """``local_services`` with the database emptied, once per example."""

    def fresh() -> Services:
        _empty(local_services.engine)
        return local_services

    return fresh


@SETTINGS
@given(
    kind=st.sampled_from(MALFORMATIONS),
    hit=st.lists(st.booleans(), min_size=4, max_size=4).filter(any),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_a_malformed_result_line_is_named_and_only_its_task_is_retried(
    clean_services: Callable[[], Services], emulator: EmulatorServer, kind: str, hit: list[bool], seed: int
):
    services = clean_services()
    emulator.reset(TEST_EMULATOR_CONFIG.model_copy(update={"seed": seed}))
    ids = [
        enqueue(services.engine, "date_extraction", {"text": f"Paid on 2024-03-0{n + 1}."}).task_id for n in range(4)
    ]
    corrupted = {f"t{task_id}-1" for task_id, bad in zip(ids, hit, strict=True) if bad}
    emulator.faults.malform_results(kind, custom_ids=corrupted)  # type: ignore[arg-type]
    submit_step(services)
    emulator.advance(3600)
    try:
        collected = collect_step(services)
    except NightbatchError as exc:
        pytest.fail(f"collecting raised {exc!r}; a bad line must not stop the batch")
    (report,) = collected.ingested
    named = report.bad_lines + [f"batch {report.provider_batch_id} custom_id {c}" for c in report.unknown_custom_ids]
    for custom_id in corrupted:
        shown = f"zz-unknown-{custom_id}" if kind == "unknown_custom_id" else custom_id
        if kind != "truncated":  # a line cut in half is named by the custom_id still readable in it
            assert any(str(report.provider_batch_id) in n and shown in n for n in named), (custom_id, named)
    assert len(named) >= len(corrupted)
    with services.engine.connect() as conn:
        tasks = {f"t{r.id}-1": r for r in conn.execute(select(Task))}
    for custom_id, task in tasks.items():
        if custom_id in corrupted and kind != "duplicate":
            assert task.status == TaskStatus.QUEUED, task
            assert task.error_type in ("bad_result", "missing_result"), task
        else:
            assert task.status == TaskStatus.SUCCEEDED, task
    emulator.faults.clear()  # the retry comes back whole
    submit_step(services)
    emulator.advance(3600)
    collect_step(services)
    with services.engine.connect() as conn:
        assert set(conn.execute(select(col(Task.status))).scalars()) == {TaskStatus.SUCCEEDED}


def test_a_truncated_result_line_is_named_by_its_custom_id(local_services: Services, emulator: EmulatorServer):
    task_id = enqueue(local_services.engine, "date_extraction", {"text": "Paid on 2024-03-01."}).task_id
    emulator.faults.malform_results("truncated", custom_ids={f"t{task_id}-1"})
    submit_step(local_services)
    emulator.advance(3600)
    (report,) = collect_step(local_services).ingested
    assert any(f"t{task_id}-1" in line for line in report.bad_lines), report.bad_lines
