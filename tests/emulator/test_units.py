"""Unit tests of the emulator's pieces (no server): tokenizer, prompt layout, cache model, clock, API."""

from __future__ import annotations

import json

import jsonschema
import pytest

import nightbatch.emulator as emulator_package
from nightbatch.emulator.cache import CacheSpace, PromptCache
from nightbatch.emulator.clock import SimClock, format_rfc3339
from nightbatch.emulator.errors import ERROR_STATUS, ApiError
from nightbatch.emulator.faults import ErrorKind
from nightbatch.emulator.ids import IdFactory
from nightbatch.emulator.lineup import EFFORT_SCALE, conform_to_schema, minimal_instance, scale_tokens, thinking_plan
from nightbatch.emulator.prompt import analyse_prompt
from nightbatch.emulator.tokenizer import REPLY_PRIMER, canonical_json, text_tokens, truncate_to_tokens
from tests.emulator.support import MODEL, params, system_block, system_prefix_tokens, user_tail_tokens


def test_public_api_is_pinned():
    assert sorted(emulator_package.__all__) == [
        "ClassifierResponder",
        "DateResponder",
        "DefaultResponder",
        "EmulatorConfig",
        "EmulatorServer",
        "EmulatorState",
        "FaultRule",
        "Faults",
        "LedgerEntry",
        "LedgerView",
        "RequestFault",
        "Responder",
        "ResponderRequest",
        "VerdictResponder",
        "run_emulator",
        "serve",
        "text_tokens",
    ]


def test_error_kinds_cover_every_status():
    assert set(ErrorKind.__args__) == set(ERROR_STATUS)
    with pytest.raises(ValueError, match="unknown API error type"):
        ApiError("teapot_error", "no")


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("abcd", 1), ("abcde", 2), ("é", 1), ("日本語", 3)])
def test_text_tokens_are_utf8_bytes_over_four(text, tokens):
    assert text_tokens(text) == tokens


def test_truncate_to_tokens_keeps_valid_utf8():
    assert text_tokens(truncate_to_tokens("日本語のテキスト", 2)) <= 2
    assert truncate_to_tokens("abcdefgh", 1) == "abcd"


def test_prompt_layout_counts_and_breakpoints():
    shape = analyse_prompt(params("hi", system=system_block(100)), MODEL)
    assert shape.prefix_tokens[0] == system_prefix_tokens(100)
    assert shape.total_tokens == system_prefix_tokens(100) + user_tail_tokens("hi")
    assert shape.breakpoints == ((0, 300),)
    string_form = analyse_prompt(params("hi", system=system_block(100)[0]["text"]), MODEL)
    assert string_form.total_tokens == shape.total_tokens
    assert string_form.breakpoints == ()
    assert analyse_prompt(params("hi"), MODEL).total_tokens == user_tail_tokens("hi")
    assert REPLY_PRIMER > 0


def test_cache_plan_lookback_finds_an_earlier_entry():
    cache = PromptCache()
    w = CacheSpace("w", "realtime")
    first = analyse_prompt(params("x" * 8000, cache_control={"type": "ephemeral"}), MODEL)
    plan = cache.plan(w, first, 1024, 0.0, 20)
    cache.commit(w, plan, now=0.0, usable_from=0.0)
    conversation = {
        "model": MODEL,
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "x" * 8000},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "more"},
        ],
        "cache_control": {"type": "ephemeral"},
    }
    longer = analyse_prompt(conversation, MODEL)
    assert cache.plan(w, longer, 1024, 1.0, 20).cache_read_input_tokens == first.prefix_tokens[0]
    assert cache.plan(w, longer, 1024, 1.0, 1).cache_read_input_tokens == 0  # outside the lookback window
    assert cache.plan(CacheSpace("other", "realtime"), longer, 1024, 1.0, 20).cache_read_input_tokens == 0
    assert cache.plan(CacheSpace("w", "batch", "b1"), longer, 1024, 1.0, 20).cache_read_input_tokens == 0


def test_a_batch_reads_entries_other_batches_made_usable_never_its_own():
    cache = PromptCache()
    shape = analyse_prompt(params("x" * 8000, cache_control={"type": "ephemeral", "ttl": "1h"}), MODEL)
    own, other = CacheSpace("w", "batch", "b1"), CacheSpace("w", "batch", "b2")
    cache.commit(own, cache.plan(own, shape, 1024, 0.0, 20), now=0.0, usable_from=1.0)
    assert cache.plan(own, shape, 1024, 2.0, 20).cache_read_input_tokens == 0
    assert cache.plan(other, shape, 1024, 0.5, 20).cache_read_input_tokens == 0  # not usable yet
    assert cache.plan(other, shape, 1024, 2.0, 20).cache_read_input_tokens == shape.prefix_tokens[0]
    missed = cache.plan(other, shape, 1024, 2.0, 20, can_read=False)  # a best-effort miss writes it again
    assert (missed.cache_read_input_tokens, missed.cache_creation_input_tokens) == (0, shape.prefix_tokens[0])
    cache.commit(other, missed, now=2.0, usable_from=3.0)
    assert cache.plan(own, shape, 1024, 3.0, 20).cache_read_input_tokens == shape.prefix_tokens[0]  # b2's write
    assert cache.plan(own, shape, 1024, 1.0 + 3600, 20).cache_read_input_tokens == shape.prefix_tokens[0]
    assert cache.plan(other, shape, 1024, 3.0 + 3600, 20).cache_read_input_tokens == 0  # expired


def test_clock_advances_scales_and_formats():
    clock = SimClock(start=1_700_000_000.0, time_scale=0)
    assert clock.now() == 1_700_000_000.0
    assert clock.advance(90) == 1_700_000_090.0
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    clock.resume_at_least(1_700_000_100.0)
    assert clock.now() == 1_700_000_100.0
    assert format_rfc3339(0.5) == "1970-01-01T00:00:00.500000Z"


def test_ids_are_seeded_and_shaped_like_the_real_ones():
    assert IdFactory(7).new("msgbatch") == IdFactory(7).new("msgbatch")
    assert IdFactory(7).new("msg") != IdFactory(8).new("msg")
    assert len(IdFactory(1).new("req")) == len("req_011CSHoEeqs5C35K2UUqR7Fy")


# ---------------------------------------------------------------- late-2026 lineup pieces
@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False},
        {"type": "array", "items": {"type": "integer", "minimum": 5}, "minItems": 3},
        {"enum": ["x", "y"]},
        {"const": 7},
        {"anyOf": [{"type": "null"}, {"type": "string"}]},
        {"type": ["null", "boolean"]},
        {"type": "string", "maxLength": 2},
        {"type": "number", "exclusiveMinimum": 1.5},
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
            ]
        },
        {
            "$defs": {
                "n": {"type": "object", "properties": {"v": {"type": "string", "minLength": 4}}, "required": ["v"]}
            },
            "type": "object",
            "properties": {"n": {"$ref": "#/$defs/n"}},
            "required": ["n"],
        },
    ],
)
def test_minimal_instance_is_valid(schema):
    jsonschema.validate(minimal_instance(schema), schema)


def test_conform_keeps_a_valid_answer_and_replaces_an_invalid_one():
    schema = {"type": "object", "properties": {"label": {"enum": ["a", "b"]}}, "required": ["label"]}
    as_json = canonical_json(schema)
    assert conform_to_schema('{"label": "b"}', as_json) == '{"label": "b"}'
    assert json.loads(conform_to_schema("billing", as_json)) == {"label": "a"}
    assert json.loads(conform_to_schema('{"label": "c"}', as_json)) == {"label": "a"}


def test_thinking_plan_scales_with_effort_and_respects_limits():
    plan = {e: thinking_plan(mode="adaptive", effort=e, budget=None, max_tokens=10_000, pick=0.5) for e in EFFORT_SCALE}
    assert plan["low"] < plan["medium"] < plan["high"] < plan["xhigh"] < plan["max"]
    assert thinking_plan(mode="adaptive", effort=None, budget=None, max_tokens=10_000, pick=0.5) == plan["medium"]
    assert thinking_plan(mode="off", effort="max", budget=None, max_tokens=10_000, pick=0.5) == 0
    assert thinking_plan(mode="enabled", effort="max", budget=1024, max_tokens=10_000, pick=0.99) == 1024
    assert thinking_plan(mode="adaptive", effort="max", budget=None, max_tokens=50, pick=0.99) == 49
    assert thinking_plan(mode="adaptive", effort="max", budget=None, max_tokens=1, pick=0.99) == 0


def test_v2_ratio_scales_every_prefix_and_keeps_the_primer_outside():
    body = params("A question", system=system_block(2000))
    legacy = analyse_prompt(body, MODEL)
    v2 = analyse_prompt(body, MODEL, ratio=1.3)
    assert v2.prefix_tokens == tuple(scale_tokens(t, 1.3) for t in legacy.prefix_tokens)
    assert v2.total_tokens == scale_tokens(legacy.total_tokens, 1.3)
    assert v2.total_tokens > v2.prefix_tokens[-1]
    assert v2.keys == legacy.keys
