"""Helpers shared by the emulator tests: request builders and prompts of known token length."""

from __future__ import annotations

from typing import Any

from nightbatch.emulator.tokenizer import BLOCK_OVERHEAD, MESSAGE_OVERHEAD, REPLY_PRIMER, SYSTEM_OVERHEAD

MODEL = "claude-opus-4-8"  # min cacheable 1,024 tokens in the catalog
HAIKU = "claude-haiku-4-5"  # min cacheable 4,096 tokens


def text_of_tokens(tokens: int, seed: str = "policy") -> str:
    """ASCII text counting exactly ``tokens`` tokens (4 bytes each)."""
    unit = f"{seed} text. "
    return (unit * (tokens * 4 // len(unit) + 1))[: tokens * 4]


def system_block(tokens: int, ttl: str | None = "5m", seed: str = "policy") -> list[dict[str, Any]]:
    """A one-block system prompt; with ``ttl`` it carries a cache breakpoint."""
    block: dict[str, Any] = {"type": "text", "text": text_of_tokens(tokens, seed)}
    if ttl is not None:
        block["cache_control"] = {"type": "ephemeral", "ttl": ttl}
    return [block]


def system_prefix_tokens(tokens: int) -> int:
    """Prompt tokens up to and including a one-block system prompt of ``tokens`` text tokens."""
    return tokens + BLOCK_OVERHEAD + SYSTEM_OVERHEAD


def user_tail_tokens(text: str) -> int:
    """Tokens of a one-text user message plus the reply primer (what follows the breakpoint)."""
    return -(-len(text) // 4) + BLOCK_OVERHEAD + MESSAGE_OVERHEAD + REPLY_PRIMER


def params(
    content: str = "Hello there",
    *,
    model: str = MODEL,
    max_tokens: int = 64,
    system: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """Messages-create params."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": content}],
    }
    if system is not None:
        body["system"] = system
    body.update(extra)
    return body


def batch_requests(count: int, **kwargs: Any) -> list[dict[str, Any]]:
    """``count`` batch requests ``r0..`` with distinct user texts."""
    return [{"custom_id": f"r{i}", "params": params(f"Question number {i:05d}", **kwargs)} for i in range(count)]


def prompt_tokens(usage: Any) -> int:
    """input + cache creation + cache read."""
    return int(usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens)
