"""Opt-in padding: a short prefix reaches its model's minimum, deterministically, and only when asked."""

from __future__ import annotations

from nightbatch.build.context import estimate_tokens
from nightbatch.build.prefix import prefix_for
from nightbatch.tasktypes import CachePolicy, TaskType

SHORT = TaskType(name="dates", model="claude-haiku-4-5", max_tokens=32, system="Extract the date.", template="{text}")


def test_padding_brings_a_short_prefix_over_the_minimum_and_is_deterministic():
    padded_type = SHORT.model_copy(update={"cache": CachePolicy(pad_to_minimum=True)})
    padded = prefix_for(padded_type, "claude-haiku-4-5")
    again = prefix_for(padded_type, "claude-haiku-4-5")
    assert padded.hash == again.hash  # the same bytes every time: it caches
    assert estimate_tokens([list(padded.tools), list(padded.system_blocks)]) >= 4096
    assert padded.system_blocks[0]["text"] == "Extract the date."  # the type's own text comes first
    assert "no instructions" in padded.system_blocks[-1]["text"]
    # Per model: Opus 4.8's minimum is 1,024.
    opus = prefix_for(padded_type, "claude-opus-4-8")
    assert 1024 <= estimate_tokens([list(opus.tools), list(opus.system_blocks)]) < 2048


def test_no_padding_unless_asked_or_when_already_long_enough():
    assert len(prefix_for(SHORT, "claude-haiku-4-5").system_blocks) == 1
    long_type = SHORT.model_copy(update={"system": "x " * 20_000, "cache": CachePolicy(pad_to_minimum=True)})
    assert len(prefix_for(long_type, "claude-haiku-4-5").system_blocks) == 1
