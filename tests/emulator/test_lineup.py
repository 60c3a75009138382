"""The late-2026 lineup through the real SDK (strict validation): dated ids, tokenizer families, thinking
by default on 5.x, effort, refused prefill / forced tool use, structured outputs, inference_geo."""

from __future__ import annotations

import json

import anthropic
import jsonschema
import pytest
from anthropic.types import TextBlock, ThinkingBlock
from anthropic.types.messages import MessageBatchIndividualResponse

from nightbatch.catalog import load_catalog
from nightbatch.emulator.lineup import EFFORT_SCALE, THINKING_BASE
from nightbatch.emulator.tokenizer import text_tokens
from tests.emulator.support import params

HAIKU_55 = "claude-haiku-5-5"
SONNET_55 = "claude-sonnet-5-5"
HAIKU_45 = "claude-haiku-4-5"
REAL_RATIOS = {"legacy": 1.0, "v2": 1.3}
TOOL = {"name": "classify", "description": "Pick a label", "input_schema": {"type": "object", "properties": {}}}
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["billing", "bug", "other"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "urgent": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 2}, "minItems": 2},
        "owner": {"$ref": "#/$defs/person"},
        "count": {"type": "integer", "exclusiveMinimum": 3},
        "note": {"type": ["string", "null"]},
    },
    "required": ["label", "confidence", "urgent", "tags", "owner", "count", "note"],
    "additionalProperties": False,
    "$defs": {
        "person": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "team": {"enum": ["a", "b"]}},
            "required": ["name", "team"],
            "additionalProperties": False,
        }
    },
}


def run_batch(client, emulator, requests):
    batch = client.messages.batches.create(requests=requests)
    emulator.advance(3 * 3600)
    results = client.messages.batches.results(batch.id)
    parsed = {r.custom_id: r for r in results}
    for result in parsed.values():  # strict shape check of every line
        MessageBatchIndividualResponse.model_validate(result.model_dump())
    return parsed


def bad_request(client, **kwargs):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**kwargs)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    return caught.value.body["error"]["message"]


# ---------------------------------------------------------------- the lineup and dated ids
def test_every_catalog_model_answers(anthropic_client):
    for model in load_catalog():
        message = anthropic_client.messages.create(**params("Hello", model=model, max_tokens=2000))
        assert message.model == model
        assert message.content[-1].type == "text"


def test_a_dated_id_is_accepted_and_echoed_as_sent(anthropic_client):
    # Unverified: we echo the id as sent (the API's documented examples echo the request's model id).
    message = anthropic_client.messages.create(**params("Hello", model="claude-haiku-4-5-20251001"))
    assert message.model == "claude-haiku-4-5-20251001"
    counted = anthropic_client.messages.count_tokens(
        model="claude-haiku-4-5-20251001", messages=[{"role": "user", "content": "Hello"}]
    )
    assert counted.input_tokens == message.usage.input_tokens


def test_an_unknown_dated_id_is_404(anthropic_client):
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.create(**params("Hello", model="claude-haiku-4-5-20990101"))


# ---------------------------------------------------------------- tokenizer families
def test_v2_family_counts_about_1_3x_the_legacy_family(anthropic_client, emulator):
    emulator.configure(tokenizer_ratios=REAL_RATIOS)
    text = "The quick brown fox jumps over the lazy dog. " * 400
    body = {"messages": [{"role": "user", "content": text}]}
    legacy = anthropic_client.messages.count_tokens(model=HAIKU_45, **body).input_tokens
    v2 = anthropic_client.messages.count_tokens(model=HAIKU_55, **body).input_tokens
    assert 1.28 <= v2 / legacy <= 1.32
    usage = anthropic_client.messages.create(**params(text, model=HAIKU_55, thinking={"type": "disabled"})).usage
    assert usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens == v2


def test_v2_count_tokens_equals_usage_with_cache_writes_and_reads(anthropic_client, emulator):
    emulator.configure(tokenizer_ratios=REAL_RATIOS)
    system = [{"type": "text", "text": "policy text. " * 800, "cache_control": {"type": "ephemeral"}}]
    request = params("Which policy?", model=SONNET_55, system=system, thinking={"type": "disabled"})
    counted = anthropic_client.messages.count_tokens(model=SONNET_55, system=system, messages=request["messages"])
    for _ in range(2):  # a write, then a read
        usage = anthropic_client.messages.create(**request).usage
        assert (
            usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
            == counted.input_tokens
        )
    assert usage.cache_read_input_tokens > 0


def test_v2_output_tokens_are_scaled_too(anthropic_client, emulator):
    emulator.configure(tokenizer_ratios=REAL_RATIOS)
    kwargs = {"max_tokens": 4000, "thinking": {"type": "disabled"}}
    message = anthropic_client.messages.create(**params("Write", model=HAIKU_55, **kwargs))
    legacy = text_tokens(message.content[0].text)
    assert message.usage.output_tokens == -(-legacy * 13 // 10)


# ---------------------------------------------------------------- thinking and effort
def test_5x_models_think_by_default_and_bill_it_as_output(anthropic_client):
    message = anthropic_client.messages.create(**params("Classify this", model=HAIKU_55, max_tokens=4000))
    thinking, text = message.content
    assert isinstance(thinking, ThinkingBlock)
    assert thinking.thinking
    assert thinking.signature
    assert isinstance(text, TextBlock)
    details = message.usage.output_tokens_details
    assert details is not None
    assert THINKING_BASE[0] <= details.thinking_tokens <= THINKING_BASE[1]
    assert message.usage.output_tokens == details.thinking_tokens + text_tokens(text.text)


def test_thinking_disabled_stops_it(anthropic_client):
    message = anthropic_client.messages.create(**params("Classify", model=HAIKU_55, thinking={"type": "disabled"}))
    assert [block.type for block in message.content] == ["text"]
    assert message.usage.output_tokens_details is None
    assert message.usage.output_tokens == text_tokens(message.content[0].text)


def test_4x_models_do_not_think_unless_asked(anthropic_client):
    plain = anthropic_client.messages.create(**params("Hello", model=HAIKU_45, max_tokens=3000))
    assert [block.type for block in plain.content] == ["text"]
    asked = anthropic_client.messages.create(
        **params("Hello", model=HAIKU_45, max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 1024})
    )
    assert asked.content[0].type == "thinking"
    assert 0 < asked.usage.output_tokens_details.thinking_tokens <= 1024


def test_display_omitted_keeps_the_signature_and_the_bill(anthropic_client):
    shown = anthropic_client.messages.create(**params("Hi", model=SONNET_55, max_tokens=3000))
    omitted = anthropic_client.messages.create(
        **params("Hi", model=SONNET_55, max_tokens=3000, thinking={"type": "adaptive", "display": "omitted"})
    )
    assert omitted.content[0].thinking == ""
    assert omitted.content[0].signature
    assert omitted.usage.output_tokens == shown.usage.output_tokens


def test_effort_scales_thinking(anthropic_client):
    spent = {}
    for effort in EFFORT_SCALE:
        message = anthropic_client.messages.create(
            **params("Same question", model=SONNET_55, max_tokens=8000, output_config={"effort": effort})
        )
        spent[effort] = message.usage.output_tokens_details.thinking_tokens
    assert spent["low"] < spent["medium"] < spent["high"] < spent["xhigh"] < spent["max"]
    assert spent["high"] == 2 * spent["medium"]


def test_thinking_counts_toward_max_tokens(anthropic_client):
    message = anthropic_client.messages.create(**params("Long answer please", model=HAIKU_55, max_tokens=40))
    assert message.usage.output_tokens <= 40
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens_details.thinking_tokens == 39


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        ({"output_config": {"verbosity": "low"}}, "output_config.verbosity"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1023}}, "budget_tokens"),
        ({"thinking": {"type": "enabled"}}, "budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 2048}, "max_tokens"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type"),
        ({"thinking": {"type": "disabled", "budget_tokens": 2000}}, "budget_tokens"),
        ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format.type"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
        ({"inference_geo": "mars"}, "inference_geo"),
    ],
)
def test_bad_thinking_effort_format_or_geo_is_400(anthropic_client, extra, where):
    body = params("Hi", model=SONNET_55, max_tokens=4000)
    body.update(extra)
    assert where in bad_request(anthropic_client, **body)


def test_enabled_thinking_is_accepted_like_the_api(anthropic_client):
    body = params("Hi", model=SONNET_55, max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1024})
    message = anthropic_client.messages.create(**body)
    assert message.usage.output_tokens_details.thinking_tokens <= 1024


# ---------------------------------------------------------------- refused features
def test_prefill_is_refused_on_haiku_5_5_only(anthropic_client):
    prefill = [{"role": "user", "content": "Label it"}, {"role": "assistant", "content": "Label:"}]
    message = bad_request(
        anthropic_client, model=HAIKU_55, max_tokens=100, messages=prefill, thinking={"type": "disabled"}
    )
    assert "prefill" in message
    for model in (HAIKU_45, SONNET_55):
        body = {"model": model, "max_tokens": 100, "messages": prefill, "thinking": {"type": "disabled"}}
        assert anthropic_client.messages.create(**body).content


def test_forced_tool_is_refused_on_5_5_even_without_thinking(anthropic_client):
    for model in (HAIKU_55, SONNET_55, "claude-opus-5-5"):
        body = params("Hi", model=model, tools=[TOOL], tool_choice={"type": "tool", "name": "classify"})
        assert "forced tool use" in bad_request(anthropic_client, **body, thinking={"type": "disabled"})
    ok = params("Hi", model=HAIKU_45, tools=[TOOL], tool_choice={"type": "tool", "name": "classify"})
    assert anthropic_client.messages.create(**ok).content


def test_any_tool_choice_conflicts_with_default_thinking(anthropic_client):
    body = params("Hi", model=SONNET_55, tools=[TOOL], tool_choice={"type": "any"})
    assert "Thinking may not be enabled" in bad_request(anthropic_client, **body)
    assert anthropic_client.messages.create(**body, thinking={"type": "disabled"}).content


def test_in_a_batch_refusals_are_errored_results(anthropic_client, emulator):
    prefill = [{"role": "user", "content": "Label it"}, {"role": "assistant", "content": "Label:"}]
    requests = [
        {"custom_id": "prefill", "params": {"model": HAIKU_55, "max_tokens": 50, "messages": prefill}},
        {
            "custom_id": "forced",
            "params": params("Hi", model=SONNET_55, tools=[TOOL], tool_choice={"type": "tool", "name": "classify"}),
        },
        {"custom_id": "effort", "params": params("Hi", model=SONNET_55, output_config={"effort": "huge"})},
        {"custom_id": "fine", "params": params("Hi", model=HAIKU_55, thinking={"type": "disabled"})},
    ]
    results = run_batch(anthropic_client, emulator, requests)
    for custom_id in ("prefill", "forced", "effort"):
        assert results[custom_id].result.type == "errored"
        assert results[custom_id].result.error.error.type == "invalid_request_error"
    assert results["fine"].result.type == "succeeded"


# ---------------------------------------------------------------- structured outputs
def test_structured_output_conforms_to_the_schema(anthropic_client):
    body = params("Sort this ticket", model=HAIKU_55, max_tokens=2000, thinking={"type": "disabled"})
    message = anthropic_client.messages.create(
        **body, output_config={"format": {"type": "json_schema", "schema": SCHEMA}}
    )
    answer = json.loads(message.content[0].text)
    jsonschema.validate(answer, SCHEMA)
    again = anthropic_client.messages.create(
        **body, output_config={"format": {"type": "json_schema", "schema": SCHEMA}}
    )
    assert again.content[0].text == message.content[0].text


def test_structured_output_keeps_a_conforming_task_answer(anthropic_client):
    schema = {
        "type": "object",
        "properties": {"date": {"type": ["string", "null"]}},
        "required": ["date"],
        "additionalProperties": False,
    }
    body = params(
        "The invoice is dated March 5, 2026.",
        model=HAIKU_55,
        system='Extract the date.\nOutput: JSON {"date": "YYYY-MM-DD"}',
        thinking={"type": "disabled"},
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    message = anthropic_client.messages.create(**body)
    assert json.loads(message.content[0].text) == {"date": "2026-03-05"}


def test_structured_output_in_a_batch(anthropic_client, emulator):
    fmt = {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"}
    requests = [
        {"custom_id": f"s{i}", "params": params(f"Ticket {i}", model=SONNET_55, max_tokens=3000, output_config=fmt)}
        for i in range(3)
    ]
    for result in run_batch(anthropic_client, emulator, requests).values():
        message = result.result.message
        assert message.content[0].type == "thinking"
        jsonschema.validate(json.loads(message.content[1].text), SCHEMA)


# ---------------------------------------------------------------- inference_geo and the batch tier
def test_inference_geo_is_echoed_and_defaults_to_global(anthropic_client):
    us = anthropic_client.messages.create(**params("Hi", inference_geo="us"))
    assert us.usage.inference_geo == "us"
    assert anthropic_client.messages.create(**params("Hi")).usage.inference_geo == "global"


def test_batch_lines_carry_batch_tier_geo_and_thinking(anthropic_client, emulator):
    requests = [
        {"custom_id": "us", "params": params("Hi", model=HAIKU_55, max_tokens=2000, inference_geo="us")},
        {"custom_id": "plain", "params": params("Hi", model=HAIKU_45)},
    ]
    results = run_batch(anthropic_client, emulator, requests)
    us = results["us"].result.message
    assert us.usage.service_tier == "batch"
    assert us.usage.inference_geo == "us"
    assert us.content[0].type == "thinking"
    assert us.usage.output_tokens > us.usage.output_tokens_details.thinking_tokens > 0
    plain = results["plain"].result.message
    assert (plain.usage.service_tier, plain.usage.inference_geo) == ("batch", "global")
    billed = {e.custom_id: e for e in emulator.ledger.entries()}
    assert billed["us"].output_tokens == us.usage.output_tokens
