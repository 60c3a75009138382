"""Thinking, effort, structured outputs and inference_geo in the requests we BUILD (issue 14).

These assert the params themselves (and check them against the SDK's own request types), so they hold
whatever the emulator does with them.
"""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from pydantic import TypeAdapter

from nightbatch.build.prefix import canonical_json
from nightbatch.build.requests import RequestBuilder
from nightbatch.tasktypes import TaskType

SCHEMA = {"type": "object", "required": ["date"], "properties": {"date": {"type": ["string", "null"]}}}
SDK_PARAMS: TypeAdapter[Any] = TypeAdapter(MessageCreateParamsNonStreaming)


def make_type(**overrides: object) -> TaskType:
    fields: dict[str, object] = {
        "name": "extract",
        "model": "claude-haiku-5-5",
        "max_tokens": 4096,
        "system": "Extract the date.",
        "template": "{text}",
        "output": "json",
        "output_schema": SCHEMA,
    }
    fields.update(overrides)
    return TaskType.model_validate(fields)


def params_of(task_type: TaskType, model: str = "claude-haiku-5-5") -> dict[str, Any]:
    request = RequestBuilder().build(1, 1, task_type, model, {"text": "on 3 May 2026"})
    # The composed bytes are exactly the entry's canonical JSON, settings included.
    assert request.entry_bytes("1h") == canonical_json(request.entry("1h"))
    assert request.entry_size(None) == len(canonical_json(request.entry(None)))
    return request.params("1h")


@pytest.mark.parametrize(
    ("thinking", "sent"),
    [
        ("disabled", {"type": "disabled"}),
        ("adaptive", {"type": "adaptive"}),
        ({"budget_tokens": 2048}, {"type": "enabled", "budget_tokens": 2048}),
    ],
)
def test_thinking_is_sent_as_the_api_expects(thinking: object, sent: dict[str, Any]) -> None:
    params = params_of(make_type(thinking=thinking))
    assert params["thinking"] == sent
    SDK_PARAMS.validate_python(params)


@pytest.mark.parametrize("effort", ["low", "medium", "high", "xhigh", "max"])
def test_effort_goes_under_output_config(effort: str) -> None:
    params = params_of(make_type(effort=effort, thinking="adaptive"))
    assert params["output_config"] == {"effort": effort}
    SDK_PARAMS.validate_python(params)


def test_structured_sends_the_output_schema_as_output_config_format() -> None:
    params = params_of(make_type(structured=True, effort="low", thinking="disabled"))
    assert params["output_config"] == {"effort": "low", "format": {"type": "json_schema", "schema": SCHEMA}}
    SDK_PARAMS.validate_python(params)


def test_inference_geo_is_a_request_param() -> None:
    params = params_of(make_type(inference_geo="us"))
    assert params["inference_geo"] == "us"
    SDK_PARAMS.validate_python(params)


def test_settings_come_between_the_prefix_and_the_messages() -> None:
    params = params_of(make_type(thinking="disabled", effort="low", structured=True, inference_geo="us"))
    assert list(params) == ["model", "max_tokens", "system", "thinking", "output_config", "inference_geo", "messages"]


def test_a_type_that_says_nothing_sends_nothing_new() -> None:
    params = params_of(make_type(output_schema=None, output="text"))
    assert list(params) == ["model", "max_tokens", "system", "messages"]


def test_prefix_groups_split_by_thinking_and_effort() -> None:
    builder = RequestBuilder()

    def hash_of(**overrides: object) -> str:
        return builder.prefix(make_type(**overrides), "claude-haiku-5-5").hash

    plain = RequestBuilder().prefix(make_type(), "claude-haiku-5-5")
    hashes = {
        hash_of(name="a"),
        hash_of(name="b", thinking="disabled"),
        hash_of(name="c", thinking="adaptive"),
        hash_of(name="d", thinking="adaptive", effort="low"),
        hash_of(name="e", thinking={"budget_tokens": 1024}),
        hash_of(name="f", structured=True),
        hash_of(name="g", inference_geo="us"),
    }
    assert len(hashes) == 7
    assert hash_of(name="h") == plain.hash  # the same settings share one group (and cache)


def test_thinking_budget_must_be_at_least_1024() -> None:
    with pytest.raises(ValueError, match="budget_tokens"):
        make_type(thinking={"budget_tokens": 512})
