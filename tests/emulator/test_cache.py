"""Prompt-cache accounting: batches and real-time calls report exactly what the cache model predicts.

The tests named ``test_waves_...`` pin the legacy ``batch_cache_model="waves"`` option (one cache shared by
real-time calls and batches, later waves of a batch reading its first wave); the default, isolated model
is tested in test_batch_cache.py.
"""

from __future__ import annotations

import anthropic
import pytest

from nightbatch.emulator.tokenizer import TOOLS_PREAMBLE, tool_tokens
from tests.emulator.support import (
    HAIKU,
    MODEL,
    batch_requests,
    params,
    prompt_tokens,
    system_block,
    system_prefix_tokens,
    user_tail_tokens,
)

PREFIX = 2000  # text tokens of the shared system prompt; Opus 4.8 caches from 1,024
P = system_prefix_tokens(PREFIX)


def run_batch(client, emulator, requests, wait=3 * 3600):
    batch = client.messages.batches.create(requests=requests)
    emulator.advance(wait)
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    return batch.id, {r.custom_id: r.result.message.usage for r in client.messages.batches.results(batch.id)}


def totals(usages):
    return (
        sum(u.cache_creation_input_tokens for u in usages),
        sum(u.cache_read_input_tokens for u in usages),
    )


@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_waves_batch_first_wave_writes_later_waves_read(anthropic_client, emulator, ttl):
    emulator.configure(batch_cache_model="waves")
    _, usages = run_batch(anthropic_client, emulator, batch_requests(40, system=system_block(PREFIX, ttl)))
    first_wave = [usages[f"r{i}"] for i in range(16)]
    later = [usages[f"r{i}"] for i in range(16, 40)]
    assert all(u.cache_creation_input_tokens == P and u.cache_read_input_tokens == 0 for u in first_wave)
    assert all(u.cache_read_input_tokens == P and u.cache_creation_input_tokens == 0 for u in later)
    for usage in usages.values():
        written = (
            usage.cache_creation.ephemeral_1h_input_tokens
            if ttl == "1h"
            else usage.cache_creation.ephemeral_5m_input_tokens
        )
        assert written == usage.cache_creation_input_tokens
        assert usage.input_tokens == user_tail_tokens("Question number 00000")
    assert totals(usages.values()) == (16 * P, 24 * P)


def test_waves_priming_request_makes_the_whole_batch_hit(anthropic_client, emulator):
    emulator.configure(batch_cache_model="waves")
    primer = anthropic_client.messages.create(**params("prime", system=system_block(PREFIX)))
    assert primer.usage.cache_creation_input_tokens == P
    assert primer.usage.cache_read_input_tokens == 0
    _, usages = run_batch(anthropic_client, emulator, batch_requests(40, system=system_block(PREFIX)))
    assert totals(usages.values()) == (0, 40 * P)


def test_waves_5m_ttl_expires_between_slow_waves_but_1h_survives(anthropic_client, emulator):
    emulator.configure(batch_concurrency=4, wave_seconds=700, batch_cache_model="waves")
    _, short = run_batch(anthropic_client, emulator, batch_requests(12, system=system_block(PREFIX, "5m")))
    assert totals(short.values()) == (12 * P, 0)
    emulator.reset()
    emulator.configure(batch_concurrency=4, wave_seconds=700, batch_cache_model="waves")
    _, long = run_batch(anthropic_client, emulator, batch_requests(12, system=system_block(PREFIX, "1h")))
    assert totals(long.values()) == (4 * P, 8 * P)
    assert sum(u.cache_creation.ephemeral_1h_input_tokens for u in long.values()) == 4 * P


def test_5m_entry_refreshes_on_hit_then_expires(anthropic_client, emulator):
    request = params("hi", system=system_block(PREFIX))
    assert anthropic_client.messages.create(**request).usage.cache_creation_input_tokens == P
    emulator.advance(299)
    assert anthropic_client.messages.create(**request).usage.cache_read_input_tokens == P
    emulator.advance(299)  # 598 s after the write, 299 s after the refreshing hit
    assert anthropic_client.messages.create(**request).usage.cache_read_input_tokens == P
    emulator.advance(301)
    expired = anthropic_client.messages.create(**request).usage
    assert (expired.cache_read_input_tokens, expired.cache_creation_input_tokens) == (0, P)


def test_below_the_model_minimum_nothing_is_cached(anthropic_client, emulator):
    short = params("hi", system=system_block(500))
    for _ in range(2):
        usage = anthropic_client.messages.create(**short).usage
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
        assert usage.input_tokens == system_prefix_tokens(500) + user_tail_tokens("hi")
    # 2,005 tokens is cacheable on Opus 4.8 (1,024) but not on Haiku 4.5 (4,096)
    _, usages = run_batch(anthropic_client, emulator, batch_requests(20, model=HAIKU, system=system_block(PREFIX)))
    assert totals(usages.values()) == (0, 0)


def test_count_tokens_equals_prompt_tokens_of_every_result(anthropic_client, emulator):
    requests = batch_requests(20, system=system_block(PREFIX))
    _, usages = run_batch(anthropic_client, emulator, requests)
    for request in requests:
        p = request["params"]
        counted = anthropic_client.messages.count_tokens(model=p["model"], system=p["system"], messages=p["messages"])
        assert counted.input_tokens == prompt_tokens(usages[request["custom_id"]])


def test_mixed_ttl_breakpoints_split_the_write_and_expire_separately(anthropic_client, emulator):
    tool = {
        "name": "lookup_policy",
        "description": "Look up a policy paragraph. " * 200,
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }
    tools_prefix = tool_tokens(tool) + TOOLS_PREAMBLE
    request = params("hi", system=system_block(PREFIX, "5m"), tools=[tool])
    first = anthropic_client.messages.create(**request).usage
    assert first.cache_creation.ephemeral_1h_input_tokens == tools_prefix
    assert first.cache_creation.ephemeral_5m_input_tokens == P
    assert anthropic_client.messages.create(**request).usage.cache_read_input_tokens == tools_prefix + P
    emulator.advance(400)  # the 5 m system entry is gone, the 1 h tools entry is not
    third = anthropic_client.messages.create(**request).usage
    assert third.cache_read_input_tokens == tools_prefix
    assert (third.cache_creation.ephemeral_5m_input_tokens, third.cache_creation.ephemeral_1h_input_tokens) == (P, 0)
    counted = anthropic_client.messages.count_tokens(
        model=MODEL, system=request["system"], messages=request["messages"], tools=request["tools"]
    )
    assert counted.input_tokens == prompt_tokens(third)


def test_automatic_cache_control_and_lookback_across_turns(anthropic_client, emulator):
    question = "Background. " * 600
    turn1 = params(question, cache_control={"type": "ephemeral"})
    first = anthropic_client.messages.create(**turn1).usage
    written = first.cache_creation_input_tokens
    assert written > 1024
    assert first.input_tokens == 3
    messages = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Now summarise it."},
    ]
    second = anthropic_client.messages.create(
        model=MODEL, max_tokens=50, messages=messages, cache_control={"type": "ephemeral"}
    ).usage
    assert second.cache_read_input_tokens == written
    assert second.cache_read_input_tokens + second.cache_creation_input_tokens + second.input_tokens == (
        anthropic_client.messages.count_tokens(model=MODEL, messages=messages).input_tokens
    )


def test_prefix_changes_and_other_workspaces_miss(anthropic_client, emulator):
    request = params("hi", system=system_block(PREFIX))
    anthropic_client.messages.create(**request)
    changed = params("hi", system=system_block(PREFIX, seed="other"))
    assert anthropic_client.messages.create(**changed).usage.cache_read_input_tokens == 0
    assert (
        anthropic_client.messages.create(**{**request, "model": "claude-opus-5-5"}).usage.cache_read_input_tokens == 0
    )
    # tool_choice, images, thinking and output_config: see test_batch_cache.py (the invalidation table)
    other = anthropic.Anthropic(base_url=emulator.base_url, api_key="other-workspace", _strict_response_validation=True)
    assert other.messages.create(**request).usage.cache_read_input_tokens == 0


def test_breakpoint_rules_are_enforced(anthropic_client):
    five = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
        anthropic_client.messages.create(**params("hi", system=five))
    four = five[:4]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):  # automatic one is the 5th
        anthropic_client.messages.create(**params("hi", system=four, cache_control={"type": "ephemeral"}))
    assert anthropic_client.messages.create(**params("hi", system=four)).type == "message"
    wrong_order = [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
        {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
    ]
    with pytest.raises(anthropic.BadRequestError, match="longer ttl"):
        anthropic_client.messages.create(**params("hi", system=wrong_order))


def test_ledger_matches_the_usage_the_client_saw(anthropic_client, emulator):
    anthropic_client.messages.create(**params("prime", system=system_block(PREFIX)))
    batch_id, usages = run_batch(anthropic_client, emulator, batch_requests(20, system=system_block(PREFIX)))
    [batch_total] = emulator.ledger.totals(batch_id=batch_id)
    assert batch_total["service_tier"] == "batch"
    assert batch_total["responses"] == 20
    assert batch_total["cache_read_input_tokens"] == sum(u.cache_read_input_tokens for u in usages.values())
    assert batch_total["input_tokens"] == sum(u.input_tokens for u in usages.values())
    assert batch_total["output_tokens"] == sum(u.output_tokens for u in usages.values())
    tiers = {row["service_tier"]: row["responses"] for row in emulator.ledger.totals()}
    assert tiers == {"batch": 20, "standard": 1}
