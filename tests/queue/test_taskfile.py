"""Task-file parsing: the envelope rule, defaults, and a precise error for every kind of bad line."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nightbatch.errors import InputError, TaskFileError
from nightbatch.queue import TaskFileReader, TaskSpec, default_key
from nightbatch.queue.taskfile import make_task_spec


def _read(lines: list[str] | list[bytes], **kwargs: Any) -> list[TaskSpec]:
    return list(TaskFileReader(lines, source_name="tasks.jsonl", **kwargs))


def test_a_bare_object_is_the_payload() -> None:
    [spec] = _read(['{"text": "hi", "priority": "high"}'], default_task_type="classify")
    assert spec.task_type == "classify"
    assert spec.payload == {"text": "hi", "priority": "high"}
    assert spec.priority == 0
    assert spec.key == default_key("classify", {"text": "hi", "priority": "high"})


def test_an_object_with_a_payload_object_is_an_envelope() -> None:
    line = {
        "payload": {"text": "hi"},
        "key": "doc-1",
        "task_type": "summarise",
        "priority": 5,
        "deadline": "2026-12-01T08:00:00+02:00",
        "model": "claude-haiku-4-5",
    }
    [spec] = _read([json.dumps(line)], default_task_type="classify")
    assert (spec.task_type, spec.payload, spec.key, spec.priority) == ("summarise", {"text": "hi"}, "doc-1", 5)
    assert spec.deadline == datetime(2026, 12, 1, 6, tzinfo=UTC)
    assert spec.deadline.tzinfo is UTC
    assert spec.model_override == "claude-haiku-4-5"


def test_a_payload_that_is_not_an_object_makes_a_bare_line() -> None:
    [spec] = _read(['{"payload": "just text", "n": 1}'], default_task_type="t")
    assert spec.payload == {"payload": "just text", "n": 1}


def test_default_key_ignores_key_order_and_whitespace_but_not_type() -> None:
    a = _read(['{"a": 1, "b": [1, 2]}'], default_task_type="t")[0].key
    b = _read(['{ "b":[1,2],  "a":1 }'], default_task_type="t")[0].key
    c = _read(['{"a": 1, "b": [1, 2]}'], default_task_type="u")[0].key
    assert a == b != c
    assert a.startswith("sha256:")


def test_blank_lines_are_skipped_but_counted() -> None:
    reader = TaskFileReader(["", '{"a": 1}', "   ", '{"a": 2}', ""], default_task_type="t")
    assert [s.payload["a"] for s in reader] == [1, 2]
    assert reader.lines_read == 5


def test_bytes_lines_bom_and_newlines() -> None:
    specs = _read([b'\xef\xbb\xbf{"a": 1}\r\n', b'{"a": "\xc3\xa9"}\n'], default_task_type="t")
    assert [s.payload["a"] for s in specs] == [1, "é"]


def test_reads_a_path_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    reader = TaskFileReader(path, default_task_type="t")
    assert len(list(reader)) == 2
    assert reader.source_name == str(path)
    assert TaskFileReader(io.StringIO("{}"), default_task_type="t").source_name == "<stream>"


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read task file"):
        list(TaskFileReader(tmp_path / "nope.jsonl", default_task_type="t"))


def test_known_task_types_are_enforced() -> None:
    assert _read(['{"a": 1}'], default_task_type="t", task_types={"t"})
    with pytest.raises(TaskFileError, match="unknown task type 'x'"):
        _read(['{"payload": {}, "task_type": "x"}'], default_task_type="t", task_types={"t"})


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    ('"text"', "must be a JSON object, got str"),
    ('{"a": NaN}', "NaN is not valid JSON"),
    ('{"payload": {}, "priority": "1"}', "priority: Input should be a valid integer"),
    ('{"payload": {}, "priority": 1.5}', "priority: Input should be a valid integer"),
    ('{"payload": {}, "priority": true}', "priority: Input should be a valid integer"),
    ('{"payload": {}, "key": ""}', "key: String should have at least 1 character"),
    ('{"payload": {}, "key": "' + "k" * 201 + '"}', "key: String should have at most 200 characters"),
    ('{"payload": {}, "key": 7}', "key: Input should be a valid string"),
    ('{"payload": {}, "deadline": "2026-12-01T06:00:00"}', "deadline: Input should have timezone info"),
    ('{"payload": {}, "deadline": 1767225600}', "deadline: Value error, must be an ISO 8601 string"),
    ('{"payload": {}, "task_type": "' + "t" * 65 + '"}', "task_type: String should have at most 64"),
    ('{"payload": {}, "task_type": " t"}', "surrounding whitespace"),
    ('{"payload": {}, "model": ""}', "model: String should have at least 1 character"),
    ('{"payload": {}, "prio": 1}', "unknown envelope field 'prio'"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_LINES)
def test_bad_lines_name_file_line_and_problem(line: str, problem: str) -> None:
    lines = ['{"ok": 1}', "", line, '{"ok": 2}']
    with pytest.raises(TaskFileError) as caught:
        _read(lines, default_task_type="t")
    assert caught.value.source == "tasks.jsonl"
    assert caught.value.line == 3
    assert str(caught.value).startswith("tasks.jsonl:3: ")
    assert problem in caught.value.problem


def test_a_line_without_any_task_type_is_an_error() -> None:
    with pytest.raises(TaskFileError, match=r"tasks.jsonl:1: no task type.*--task-type"):
        _read(['{"a": 1}'])


def test_invalid_utf8_is_an_error() -> None:
    with pytest.raises(TaskFileError, match=r"tasks\.jsonl:2: not valid UTF-8"):
        _read([b"{}", b'{"a": "\xff"}'], default_task_type="t")


def test_make_task_spec_validates_code_given_tasks() -> None:
    spec = make_task_spec("t", {"a": 1})
    assert spec.key == default_key("t", {"a": 1})
    with pytest.raises(InputError, match="no time zone"):
        make_task_spec("t", {}, deadline=datetime(2026, 1, 1))
    with pytest.raises(InputError, match="payload is not JSON"):
        make_task_spec("t", {"when": datetime.now(UTC)})
    with pytest.raises(InputError, match="key must be 1 to 200"):
        make_task_spec("t", {}, key="k" * 201)
    with pytest.raises(InputError, match="priority must be an int"):
        make_task_spec("t", {}, priority=True)
