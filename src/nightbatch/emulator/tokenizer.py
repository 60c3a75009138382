"""A deterministic, documented stand-in for Claude's tokenizer (the real one is not public).

Formula (all counts are integers, ``ceil`` rounds up):

* text: ``ceil(utf8_bytes / 4)`` — about right for English prose;
* every content block (text, image, tool_use, ...): ``+1`` (:data:`BLOCK_OVERHEAD`);
* every message: ``+4`` for the role markers (:data:`MESSAGE_OVERHEAD`);
* a system prompt: ``+4`` (:data:`SYSTEM_OVERHEAD`);
* every tool: ``ceil(bytes of its compact JSON definition / 4) + 8`` (:data:`TOOL_OVERHEAD`), and
  ``+300`` once when any tool is present, for the tool-use system prompt (:data:`TOOLS_PREAMBLE`);
* an image block: a flat 1,600 tokens (:data:`IMAGE_TOKENS`) — the emulator does not decode pixels;
* other non-text blocks: the text formula applied to their compact JSON;
* every request: ``+3`` for the start of the assistant turn (:data:`REPLY_PRIMER`); it sits after
  any possible cache breakpoint, so ``input_tokens`` is never 0, as on the real API.

Output tokens use the same text formula on the produced text. Absolute numbers will differ from the
real tokenizer by tens of percent; the *accounting identities* (what is cached, read, billed) are
what the emulator is faithful to.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = [
    "BLOCK_OVERHEAD",
    "IMAGE_TOKENS",
    "MESSAGE_OVERHEAD",
    "REPLY_PRIMER",
    "SYSTEM_OVERHEAD",
    "TOOLS_PREAMBLE",
    "TOOL_OVERHEAD",
    "block_tokens",
    "canonical_json",
    "text_tokens",
    "tool_tokens",
    "truncate_to_tokens",
]

BYTES_PER_TOKEN: Final = 4
BLOCK_OVERHEAD: Final = 1
MESSAGE_OVERHEAD: Final = 4
SYSTEM_OVERHEAD: Final = 4
TOOL_OVERHEAD: Final = 8
TOOLS_PREAMBLE: Final = 300
IMAGE_TOKENS: Final = 1600
REPLY_PRIMER: Final = 3


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def text_tokens(text: str) -> int:
    """``ceil(utf8_bytes / 4)``."""
    return -(-_utf8_len(text) // BYTES_PER_TOKEN)


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON: the form hashed for cache keys and counted for tools."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def without_cache_control(block: dict[str, Any]) -> dict[str, Any]:
    """The block as the model sees it (``cache_control`` is an instruction, not content)."""
    if "cache_control" not in block:
        return block
    return {key: value for key, value in block.items() if key != "cache_control"}


def block_tokens(block: dict[str, Any]) -> int:
    """Tokens of one content block, including :data:`BLOCK_OVERHEAD`."""
    kind = block.get("type")
    if kind == "text":
        return text_tokens(str(block.get("text", ""))) + BLOCK_OVERHEAD
    if kind == "image":
        return IMAGE_TOKENS + BLOCK_OVERHEAD
    return text_tokens(canonical_json(without_cache_control(block))) + BLOCK_OVERHEAD


def tool_tokens(tool: dict[str, Any]) -> int:
    """Tokens of one tool definition, including :data:`TOOL_OVERHEAD` (not the preamble)."""
    return text_tokens(canonical_json(without_cache_control(tool))) + TOOL_OVERHEAD


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` that counts as at most ``max_tokens`` tokens."""
    limit = max_tokens * BYTES_PER_TOKEN
    if text.isascii():
        return text[:limit]
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
