"""Packing: grouped by model and prefix, contiguous, within request and byte limits."""

from __future__ import annotations

from nightbatch.build.requests import BuiltRequest, RequestBuilder
from nightbatch.submit.pack import pack
from nightbatch.submit.submitter import serialized_size
from nightbatch.tasktypes import TaskType


def requests_for(name: str, model: str, count: int, start: int = 0, text: str = "x") -> list[BuiltRequest]:
    task_type = TaskType(name=name, model=model, max_tokens=5, system=f"system of {name}", template="{t}")
    builder = RequestBuilder()
    return [builder.build(start + i, 0, task_type, model, {"t": text}) for i in range(count)]


def test_groups_by_model_and_prefix_and_keeps_them_contiguous():
    mixed = requests_for("a", "claude-haiku-4-5", 5) + requests_for("b", "claude-haiku-4-5", 5, 100)
    mixed += requests_for("a", "claude-sonnet-4-6", 3, 200)
    interleaved = [r for pair in zip(mixed[:5], mixed[5:10], strict=True) for r in pair] + mixed[10:]
    result = pack(interleaved, lambda key, members: "1h")
    assert [(b.model, len(b.requests)) for b in result.batches] == [
        ("claude-haiku-4-5", 5),
        ("claude-haiku-4-5", 5),
        ("claude-sonnet-4-6", 3),
    ]
    for batch in result.batches:
        assert len({r.prefix.hash for r in batch.requests}) == 1


def test_splits_at_the_request_limit():
    result = pack(requests_for("a", "claude-haiku-4-5", 25), lambda k, m: None, max_requests=10)
    assert [len(b.requests) for b in result.batches] == [10, 10, 5]


def test_splits_at_the_byte_limit_measured_exactly():
    requests = requests_for("a", "claude-haiku-4-5", 40, text="y" * 500)
    one = len(requests[0].entry_bytes(None))
    limit = 15 + 10 * (one + 1)  # room for ten entries and their commas
    result = pack(requests, lambda k, m: None, max_bytes=limit)
    assert all(serialized_size(b) <= limit for b in result.batches)
    assert all(b.payload_bytes == serialized_size(b) for b in result.batches)
    assert sum(len(b.requests) for b in result.batches) == 40


def test_a_request_too_large_for_any_batch_is_set_aside():
    small = requests_for("a", "claude-haiku-4-5", 3)
    huge = requests_for("a", "claude-haiku-4-5", 1, start=99, text="z" * 5000)
    result = pack(small + huge, lambda k, m: None, max_bytes=2000)
    assert [r.task_id for r, _ in result.too_large] == [99]
    assert sum(len(b.requests) for b in result.batches) == 3
