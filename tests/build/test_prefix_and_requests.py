"""Request building: shared prefixes serialize byte-identically, the breakpoint sits at the prefix's end."""

from __future__ import annotations

import json

import pytest

from nightbatch import custom_ids
from nightbatch.build.prefix import canonical_json
from nightbatch.build.requests import RequestBuilder
from nightbatch.errors import InputError
from nightbatch.tasktypes import ContextPolicy, TaskType

TOOL = {"name": "lookup", "description": "Look up an order.", "input_schema": {"type": "object"}}


def make_type(**overrides: object) -> TaskType:
    fields: dict[str, object] = {
        "name": "triage",
        "model": "claude-haiku-4-5",
        "max_tokens": 8,
        "system": "Classify the ticket. Labels: a, b",
        "documents": ("Policy text " * 50,),
        "tools": (TOOL,),
        "template": "Ticket {id}: {text}",
    }
    fields.update(overrides)
    return TaskType.model_validate(fields)


def prefix_bytes(entry: dict[str, object]) -> bytes:
    params = entry["params"]
    assert isinstance(params, dict)
    return canonical_json({"tools": params.get("tools"), "system": params.get("system")})


def test_identical_prefixes_serialize_byte_identically_across_tasks_and_builders():
    task_type = make_type()
    first = RequestBuilder().build(1, 0, task_type, "claude-haiku-4-5", {"id": 1, "text": "refund please"})
    second = RequestBuilder().build(2, 0, make_type(), "claude-haiku-4-5", {"text": "crash", "id": 2})
    assert first.prefix.hash == second.prefix.hash
    a, b = first.entry_bytes("1h"), second.entry_bytes("1h")
    assert prefix_bytes(first.entry("1h")) == prefix_bytes(second.entry("1h"))
    # The per-task part is the only difference, and it comes after the prefix in the body.
    common = len(b'{"custom_id":"t1-0","params":{"model":"claude-haiku-4-5","max_tokens":8,')
    assert a[common:].split(b'"messages"')[0] == b[common:].split(b'"messages"')[0]


def test_breakpoint_is_on_the_last_prefix_block_with_the_chosen_ttl():
    request = RequestBuilder().build(1, 0, make_type(), "claude-haiku-4-5", {"id": 1, "text": "x"})
    params = request.params("1h")
    assert params["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert all("cache_control" not in block for block in params["system"][:-1])
    assert "cache_control" not in params["tools"][-1]
    assert request.params("5m")["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in block for block in request.params(None)["system"])
    assert list(params) == ["model", "max_tokens", "tools", "system", "messages"]


def test_tools_only_prefix_puts_the_breakpoint_on_the_last_tool():
    request = RequestBuilder().build(
        1, 0, make_type(system="", documents=()), "claude-haiku-4-5", {"id": 1, "text": "x"}
    )
    assert request.params("5m")["tools"][-1]["cache_control"] == {"type": "ephemeral"}


def test_prefix_depends_on_the_model():
    builder = RequestBuilder()
    haiku = builder.build(1, 0, make_type(), "claude-haiku-4-5", {"id": 1, "text": "x"})
    sonnet = builder.build(1, 0, make_type(), "claude-sonnet-4-6", {"id": 1, "text": "x"})
    assert haiku.prefix.hash != sonnet.prefix.hash


def test_rendering_and_missing_fields():
    request = RequestBuilder().build(7, 2, make_type(), "claude-haiku-4-5", {"id": 7, "text": "hello {world}"})
    assert request.messages == ({"role": "user", "content": "Ticket 7: hello {world}"},)
    # Unbound until its batch row is written (issue 15: custom_ids carry the row and the installation).
    assert request.custom_id == custom_ids.build(custom_ids.Kind.TASK, 7, 2) == "t7-2-0000000000-0000000000"
    with pytest.raises(InputError, match=r"\{text\}"):
        RequestBuilder().build(8, 0, make_type(), "claude-haiku-4-5", {"id": 8})


def test_conversation_is_trimmed_to_first_plus_last_turns():
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " * 20} for i in range(21)]
    task_type = make_type(template="Reply to {customer}.", context=ContextPolicy(keep_last_turns=4))
    request = RequestBuilder().build(1, 0, task_type, "claude-sonnet-4-6", {"customer": "c", "conversation": turns})
    contents = [m["content"] for m in request.messages]
    assert contents == [turns[0]["content"], *(t["content"] for t in turns[-4:])]
    assert request.trimmed_tokens > 0
    assert json.dumps(request.messages)  # still serializable


def test_documents_are_capped():
    task_type = make_type(template="{documents}", context=ContextPolicy(max_documents=2))
    request = RequestBuilder().build(1, 0, task_type, "claude-haiku-4-5", {"documents": ["d1", "d2", "d3", "d4"]})
    assert request.messages[-1]["content"] == "d1\nd2"
