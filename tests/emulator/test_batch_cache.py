"""The default cache model, as documented and measured (issue 13): batch and real-time caches apart,
no reads between items of one batch, reads of earlier batches' writes, best effort, and the docs'
"what invalidates the cache" table. Everything goes through the real SDK with strict validation.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from nightbatch.emulator import run_emulator
from nightbatch.emulator.prompt import analyse_prompt
from tests.emulator.support import MODEL, batch_requests, params, system_block, system_prefix_tokens
from tests.fixtures.emulator import TEST_EMULATOR_CONFIG

PREFIX = 2000  # text tokens of the shared system prompt; Opus 4.8 caches from 1,024
P = system_prefix_tokens(PREFIX)
# Batches start after 5 s and take 2 s a wave of 16 (the test config's defaults): 60 s ends any batch here.
SETTLE = 60


def run_batch(client: anthropic.Anthropic, emulator: Any, requests: list[dict[str, Any]], wait: float = SETTLE):
    batch = client.messages.batches.create(requests=requests)
    emulator.advance(wait)
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    return {r.custom_id: r.result.message.usage for r in client.messages.batches.results(batch.id)}


def pilot(client: anthropic.Anthropic, emulator: Any, ttl: str = "1h", wait: float = SETTLE) -> None:
    """A one-request batch carrying the shared prefix, as the docs advise for priming batches."""
    [usage] = run_batch(
        client,
        emulator,
        [{"custom_id": "pilot", "params": params("pilot task", system=system_block(PREFIX, ttl))}],
        wait,
    ).values()
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, P)


def group(count: int, ttl: str = "1h") -> list[dict[str, Any]]:
    return batch_requests(count, system=system_block(PREFIX, ttl))


def split(usages: Any) -> tuple[int, int]:
    """(items that read the prefix, items that wrote it); every item does exactly one of the two."""
    reads = sum(1 for u in usages.values() if (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (P, 0))
    writes = sum(1 for u in usages.values() if (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (0, P))
    assert reads + writes == len(usages)
    return reads, writes


# ---------------------------------------------------------------------------- stores and batches


@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_a_cold_batch_with_a_breakpoint_reads_nothing_and_writes_on_every_item(anthropic_client, emulator, ttl):
    usages = run_batch(anthropic_client, emulator, group(40, ttl))  # three waves of up to 16
    assert split(usages) == (0, 40)
    field = "ephemeral_1h_input_tokens" if ttl == "1h" else "ephemeral_5m_input_tokens"
    assert all(getattr(u.cache_creation, field) == P for u in usages.values())
    [billed] = emulator.ledger.totals()
    assert (billed["cache_creation_input_tokens"], billed["cache_read_input_tokens"]) == (40 * P, 0)


def test_a_real_time_write_is_not_read_by_a_batch(anthropic_client, emulator):
    warm = anthropic_client.messages.create(**params("warm-up", system=system_block(PREFIX, "1h"))).usage
    assert warm.cache_creation_input_tokens == P
    emulator.advance(1)  # the live measurement: a batch sent 1 s after the real-time write read 0
    assert split(run_batch(anthropic_client, emulator, group(20))) == (0, 20)
    # ... while the real-time entry is alive and readable by real-time calls
    assert (
        anthropic_client.messages.create(
            **params("again", system=system_block(PREFIX, "1h"))
        ).usage.cache_read_input_tokens
        == P
    )


def test_a_batch_write_is_not_read_by_a_real_time_call(anthropic_client, emulator):
    pilot(anthropic_client, emulator)
    usage = anthropic_client.messages.create(**params("real time", system=system_block(PREFIX, "1h"))).usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, P)
    assert split(run_batch(anthropic_client, emulator, group(16))) == (16, 0)  # the batch entry is still there


def test_after_a_pilot_batch_every_item_of_the_next_batch_reads(anthropic_client, emulator):
    pilot(anthropic_client, emulator)
    usages = run_batch(anthropic_client, emulator, group(40))
    assert split(usages) == (40, 0)
    assert all(u.input_tokens < 20 for u in usages.values())  # only the per-item tail is uncached
    assert split(run_batch(anthropic_client, emulator, group(40))) == (40, 0)


def test_batches_read_each_others_writes_once_usable_but_never_their_own(anthropic_client, emulator):
    first = anthropic_client.messages.batches.create(requests=group(40))
    second = anthropic_client.messages.batches.create(requests=group(40))
    emulator.advance(SETTLE)
    usages = [
        {r.custom_id: r.result.message.usage for r in anthropic_client.messages.batches.results(b.id)}
        for b in (first, second)
    ]
    for batch in usages:
        # Both first waves ran together and missed; each later wave read the OTHER batch's first-wave write.
        assert split({k: v for k, v in batch.items() if int(k[1:]) < 16}) == (0, 16)
        assert split({k: v for k, v in batch.items() if int(k[1:]) >= 16}) == (24, 0)


def test_a_pilot_in_another_workspace_warms_nothing(anthropic_client, emulator):
    other = anthropic.Anthropic(base_url=emulator.base_url, api_key="other-workspace", _strict_response_validation=True)
    with other:
        pilot(other, emulator)
        assert split(run_batch(other, emulator, group(4))) == (4, 0)
    assert split(run_batch(anthropic_client, emulator, group(4))) == (0, 4)


# ---------------------------------------------------------------------------- lifetime


def test_a_5m_batch_entry_expires_and_every_read_refreshes_it(anthropic_client, emulator):
    # The pilot is processed 5 s after create; its write is usable from 6 s and lives 300 s: until t=306.
    pilot(anthropic_client, emulator, ttl="5m", wait=10)  # now t=10
    emulator.advance(200)  # t=210: the next batch runs at t=215, reads, and refreshes to t=515
    assert split(run_batch(anthropic_client, emulator, group(4, "5m"), wait=10)) == (4, 0)
    emulator.advance(180)  # t=400: past the pilot's own expiry, inside the refreshed one
    assert split(run_batch(anthropic_client, emulator, group(4, "5m"), wait=10)) == (4, 0)  # refreshed to t=705
    emulator.advance(400)  # t=810: more than 5 minutes after the last read
    assert split(run_batch(anthropic_client, emulator, group(4, "5m"), wait=10)) == (0, 4)


def test_a_1h_batch_entry_outlives_5_minutes_but_not_an_idle_hour(anthropic_client, emulator):
    pilot(anthropic_client, emulator, ttl="1h", wait=10)
    emulator.advance(50 * 60)
    assert split(run_batch(anthropic_client, emulator, group(4), wait=10)) == (4, 0)  # refreshed for another hour
    emulator.advance(55 * 60)  # 1h45 after the pilot, 55 min after the refreshing read
    assert split(run_batch(anthropic_client, emulator, group(4), wait=10)) == (4, 0)
    emulator.advance(61 * 60)
    assert split(run_batch(anthropic_client, emulator, group(4), wait=10)) == (0, 4)


# ---------------------------------------------------------------------------- best effort


def read_pattern(client: anthropic.Anthropic, emulator: Any, chance: float, seed: int) -> set[str]:
    emulator.reset(TEST_EMULATOR_CONFIG.model_copy(update={"seed": seed, "batch_cache_hit_probability": chance}))
    pilot(client, emulator)
    usages = run_batch(client, emulator, group(400), wait=3600)
    split(usages)  # a failed read pays the write, as a miss does
    return {custom_id for custom_id, u in usages.items() if u.cache_read_input_tokens == P}


def test_the_best_effort_hit_probability_is_honoured_and_seeded(anthropic_client, emulator):
    read = read_pattern(anthropic_client, emulator, 0.3, seed=7)
    assert 0.24 <= len(read) / 400 <= 0.36
    assert read_pattern(anthropic_client, emulator, 0.3, seed=7) == read  # same seed, same items read
    assert read_pattern(anthropic_client, emulator, 0.3, seed=8) != read
    assert len(read_pattern(anthropic_client, emulator, 1.0, seed=7)) == 400
    assert read_pattern(anthropic_client, emulator, 0.0, seed=7) == set()


def test_best_effort_applies_to_batches_only(anthropic_client, emulator):
    emulator.configure(batch_cache_hit_probability=0.0)
    request = params("hi", system=system_block(PREFIX))
    anthropic_client.messages.create(**request)
    assert anthropic_client.messages.create(**request).usage.cache_read_input_tokens == P


def test_the_cache_model_is_set_through_the_admin_endpoint(anthropic_client, emulator):
    url = f"{emulator.base_url}/_emulator/config"
    assert httpx2.get(url).json()["batch_cache_model"] == "isolated"
    assert httpx2.patch(url, json={"batch_cache_model": "ocean"}).status_code == 400
    assert httpx2.patch(url, json={"batch_cache_hit_probability": 1.5}).status_code == 400
    changed = httpx2.patch(url, json={"batch_cache_model": "waves", "batch_cache_hit_probability": 0.5}).json()
    assert (changed["batch_cache_model"], changed["batch_cache_hit_probability"]) == ("waves", 0.5)
    assert emulator.config.batch_cache_model == "waves"


def test_the_waves_option_keeps_the_old_shared_cache(anthropic_client, emulator):
    emulator.configure(batch_cache_model="waves")
    anthropic_client.messages.create(**params("warm-up", system=system_block(PREFIX, "1h")))
    assert split(run_batch(anthropic_client, emulator, group(20))) == (20, 0)  # a real-time write warms it
    emulator.reset()
    emulator.configure(batch_cache_model="waves")
    assert split(run_batch(anthropic_client, emulator, group(40))) == (24, 16)  # later waves read the first


# ---------------------------------------------------------------------------- what invalidates what

TOOL = {
    "name": "lookup_policy",
    "description": "Look up a policy paragraph. " * 200,
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    "cache_control": {"type": "ephemeral", "ttl": "1h"},
}
QUESTION = "Background to the question. " * 300  # a message-level prefix well over the minimum
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


def layered(**changes: Any) -> dict[str, Any]:
    """Breakpoints at the tools (1h), the system prompt (1h) and the first user block (5m)."""
    content: list[dict[str, Any]] = [
        {"type": "text", "text": QUESTION, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Which paragraph applies?"},
    ]
    body = params("x", system=system_block(PREFIX, "1h"), tools=[TOOL], max_tokens=2048)
    body["messages"] = [{"role": "user", "content": content}]
    images = changes.pop("images", False)
    if images:
        content.append(IMAGE)
    body.update(changes)
    return body


def read_after(
    client: anthropic.Anthropic, emulator: Any, changed: dict[str, Any], base: dict[str, Any] | None = None
) -> int:
    """Tokens ``changed`` reads right after ``base`` (default: the plain layered request) wrote every level."""
    emulator.reset()
    written = client.messages.create(**(base or layered())).usage
    assert written.cache_read_input_tokens == 0
    return int(client.messages.create(**changed).usage.cache_read_input_tokens)


def levels(body: dict[str, Any]) -> tuple[int, int, int]:
    """Prompt tokens up to the tools, system and message-level breakpoints of ``body``."""
    shape = analyse_prompt(body, MODEL)
    tools, system, message = (shape.prefix_tokens[position] for position, _ in shape.breakpoints)
    return tools, system, message


def message_level(body: dict[str, Any]) -> int:
    return levels(body)[2]


T, TP, _ = levels(layered())  # tools; tools + system


def test_the_unchanged_request_reads_every_level(anthropic_client, emulator):
    assert read_after(anthropic_client, emulator, layered()) == message_level(layered())


def test_a_tool_change_invalidates_everything(anthropic_client, emulator):
    other_tool = {**TOOL, "description": TOOL["description"] + "Now with examples."}
    assert read_after(anthropic_client, emulator, layered(tools=[other_tool])) == 0


def test_a_system_change_keeps_the_tools_entry(anthropic_client, emulator):
    assert read_after(anthropic_client, emulator, layered(system=system_block(PREFIX, "1h", seed="other"))) == T


@pytest.mark.parametrize(
    "change",
    [
        {"tool_choice": {"type": "any"}},
        {"images": True},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"output_config": {"effort": "low"}},
    ],
    ids=["tool_choice", "images", "thinking", "effort"],
)
def test_message_level_settings_invalidate_only_message_entries(anthropic_client, emulator, change):
    assert read_after(anthropic_client, emulator, layered(**change)) == TP


def test_thinking_and_effort_changes_between_two_settings_invalidate_message_entries(anthropic_client, emulator):
    budget = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    larger = {"thinking": {"type": "enabled", "budget_tokens": 1500}}
    assert read_after(anthropic_client, emulator, layered(**larger), layered(**budget)) == TP
    low, high = {"output_config": {"effort": "low"}}, {"output_config": {"effort": "high"}}
    assert read_after(anthropic_client, emulator, layered(**high), layered(**low)) == TP
    assert read_after(anthropic_client, emulator, layered(**low), layered(**low)) == message_level(layered())


def test_a_structured_output_format_change_invalidates_everything(anthropic_client, emulator):
    schema = {"type": "object", "properties": {"paragraph": {"type": "string"}}, "required": ["paragraph"]}
    fmt = {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    assert read_after(anthropic_client, emulator, layered(**fmt)) == 0
    assert read_after(anthropic_client, emulator, layered(**fmt), layered(**fmt)) == message_level(layered())


def test_prompt_keys_follow_the_invalidation_table():
    """The same rules at the unit level, on the per-block keys (tools, system, message)."""

    def keys(body: dict[str, Any]) -> tuple[int, int, int]:
        shape = analyse_prompt(body, MODEL)
        tools_at, system_at, message_at = (position for position, _ in shape.breakpoints)
        return shape.keys[tools_at], shape.keys[system_at], shape.keys[message_at]

    base = keys(layered())
    assert keys(layered()) == base
    same = [
        ("tool_choice", keys(layered(tool_choice={"type": "auto"})), (True, True, False)),
        ("images", keys(layered(images=True)), (True, True, False)),
        ("thinking", keys(layered(thinking={"type": "disabled"})), (True, True, False)),
        ("effort", keys(layered(output_config={"effort": "max"})), (True, True, False)),
        ("system", keys(layered(system=system_block(PREFIX, "1h", seed="x"))), (True, False, False)),
        ("tools", keys(layered(tools=[{**TOOL, "name": "other"}])), (False, False, False)),
        (
            "format",
            keys(layered(output_config={"format": {"type": "json_schema", "schema": {}}})),
            (False, False, False),
        ),
        (
            "model",
            tuple(analyse_prompt(layered(), "claude-opus-5-5").keys[i] for i in (0, 1, 2)),
            (False, False, False),
        ),
    ]
    for name, changed, expected in same:
        assert tuple(a == b for a, b in zip(changed, base, strict=True)) == expected, name


def test_stats_count_entries_per_store(anthropic_client, emulator):
    anthropic_client.messages.create(**params("real time", system=system_block(PREFIX, "1h")))
    pilot(anthropic_client, emulator)
    stats = httpx2.get(f"{emulator.base_url}/_emulator/stats").json()["cache"]
    assert stats["entries_by_store"] == {"realtime": 1, "batch": 1}


def test_a_pilot_write_survives_an_emulator_restart_with_persistence(tmp_path):
    config = TEST_EMULATOR_CONFIG.model_copy(update={"persist_path": tmp_path / "state.pickle"})
    with run_emulator(config) as first, anthropic.Anthropic(base_url=first.base_url, api_key="k") as client:
        pilot(client, first)
    with run_emulator(config) as second, anthropic.Anthropic(base_url=second.base_url, api_key="k") as client:
        assert split(run_batch(client, second, group(20))) == (20, 0)
