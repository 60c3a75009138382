"""A request's prompt laid out as the cacheable prefix the real service sees.

The prompt is the sequence ``tools -> system -> messages``, one *block* per tool, system text block
and message content block (string content counts as one text block, exactly as the API treats it).
For every block we keep the cumulative token count up to and including it and a chained hash of
everything up to it, so "the exact prefix up to block i" is one 64-bit key. The chain follows the
docs' "what invalidates the cache" table:

* it starts from what invalidates every level: the model and ``output_config.format`` (structured
  outputs); a change of any tool changes every later key too, since tools come first;
* a system change keeps the tools keys (they are computed before it);
* just before the first message block it mixes in what invalidates message-level entries only: the
  ``tool_choice``, whether the request has images, ``thinking`` and ``output_config.effort``
  (compared as sent: whether an omitted setting shares entries with its explicit default is
  unverified).

Breakpoints are the blocks carrying ``cache_control``, plus, for a top-level ``cache_control``, the
last cacheable block (when it has none of its own). More than 4, or a ``1h`` breakpoint after a
``5m`` one, is an ``invalid_request_error``, as on the API.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from nightbatch.emulator.errors import invalid_request
from nightbatch.emulator.lineup import scale_tokens
from nightbatch.emulator.tokenizer import (
    MESSAGE_OVERHEAD,
    REPLY_PRIMER,
    SYSTEM_OVERHEAD,
    TOOLS_PREAMBLE,
    block_tokens,
    canonical_json,
    tool_tokens,
    without_cache_control,
)

__all__ = ["MAX_BREAKPOINTS", "TTL_SECONDS", "PromptShape", "analyse_prompt", "normalised_blocks"]

MAX_BREAKPOINTS: Final = 4
TTL_SECONDS: Final = {"5m": 300, "1h": 3600}
_UNCACHEABLE: Final = frozenset({"thinking", "redacted_thinking"})


@dataclass(frozen=True, slots=True)
class PromptShape:
    """Token and cache-key layout of one request's prompt (compact: a few ints per block)."""

    total_tokens: int
    prefix_tokens: tuple[int, ...]
    keys: tuple[int, ...]
    breakpoints: tuple[tuple[int, int], ...]  # (block position, ttl seconds), in prompt order
    # What the responders draw their answers from: the prompt's content, not the cache-invalidating
    # settings (thinking, effort, output format), so the same question gets the same answer and the
    # same thinking amount at the same effort whichever way the settings are spelled.
    content_digest: int = 0

    @property
    def digest(self) -> int:
        """A hash of the whole prompt's content (model, tool_choice, images and blocks)."""
        return self.content_digest


def normalised_blocks(content: object) -> list[dict[str, Any]]:
    """Message or system content as a list of blocks (``"hi"`` -> ``[{"type": "text", "text": "hi"}]``)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []


@dataclass(slots=True)
class _Block:
    tag: str
    body: dict[str, Any]
    tokens: int
    cache_control: Mapping[str, Any] | None
    cacheable: bool


def _iter_blocks(params: Mapping[str, Any]) -> Iterator[_Block]:
    for index, tool in enumerate(params.get("tools") or []):
        tokens = tool_tokens(tool) + (TOOLS_PREAMBLE if index == 0 else 0)
        yield _Block("tool", without_cache_control(tool), tokens, tool.get("cache_control"), True)
    for index, block in enumerate(normalised_blocks(params.get("system", ""))):
        tokens = block_tokens(block) + (SYSTEM_OVERHEAD if index == 0 else 0)
        yield _Block("system", without_cache_control(block), tokens, block.get("cache_control"), True)
    for message in params["messages"]:
        for index, block in enumerate(normalised_blocks(message["content"])):
            tag = f"{message['role']}:{'start' if index == 0 else 'cont'}"
            tokens = block_tokens(block) + (MESSAGE_OVERHEAD if index == 0 else 0)
            cacheable = block.get("type") not in _UNCACHEABLE
            yield _Block(tag, without_cache_control(block), tokens, block.get("cache_control"), cacheable)


def _has_images(params: Mapping[str, Any]) -> bool:
    for message in params["messages"]:
        for block in normalised_blocks(message["content"]):
            if block.get("type") == "image":
                return True
    return False


def _ttl(cache_control: Mapping[str, Any]) -> int:
    return TTL_SECONDS[str(cache_control.get("ttl", "5m"))]


def _breakpoints(blocks: list[_Block], automatic: Mapping[str, Any] | None) -> tuple[tuple[int, int], ...]:
    marks = {position: _ttl(block.cache_control) for position, block in enumerate(blocks) if block.cache_control}
    if automatic is not None:
        last = next((p for p in range(len(blocks) - 1, -1, -1) if blocks[p].cacheable), None)
        if last is not None and last not in marks:
            marks[last] = _ttl(automatic)
    if len(marks) > MAX_BREAKPOINTS:
        raise invalid_request(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(marks)}."
        )
    ordered = tuple(sorted(marks.items()))
    for (_, earlier), (_, later) in itertools.pairwise(ordered):
        if later > earlier:
            raise invalid_request(
                "a cache_control block with a longer ttl must not come after one with a shorter ttl "
                "(blocks are ordered tools, system, messages)"
            )
    return ordered


def _salts(params: Mapping[str, Any], model: str) -> tuple[bytes, bytes]:
    """(what invalidates every entry, what invalidates message-level entries only), as key material."""
    output_config = params.get("output_config")
    settings: Mapping[str, Any] = output_config if isinstance(output_config, Mapping) else {}
    whole = canonical_json([model, settings.get("format")])
    thinking = params.get("thinking")
    if isinstance(thinking, Mapping):
        # How thinking is displayed changes the response, not what the model computes (nor the bill).
        thinking = {k: v for k, v in thinking.items() if k != "display"}
    messages = canonical_json([params.get("tool_choice"), _has_images(params), thinking, settings.get("effort")])
    return whole.encode("utf-8"), b"messages\x00" + messages.encode("utf-8")


def analyse_prompt(params: Mapping[str, Any], model: str, *, ratio: float = 1.0) -> PromptShape:
    """Lay out validated params; raises :class:`ApiError` for breakpoint-count / TTL-order problems.

    ``ratio``: the model's tokenizer family relative to the legacy formula (``v2`` ~1.3), applied to the
    running totals so every prefix, and the whole, scale alike.
    """
    blocks = list(_iter_blocks(params))
    breakpoints = _breakpoints(blocks, params.get("cache_control"))
    whole, message_level = _salts(params, model)
    chain = hashlib.blake2b(whole, digest_size=8).digest()
    content = hashlib.blake2b(
        canonical_json([model, params.get("tool_choice"), _has_images(params)]).encode("utf-8"), digest_size=8
    ).digest()
    keys: list[int] = []
    prefix: list[int] = []
    running = 0
    in_messages = False
    for block in blocks:
        if not in_messages and block.tag not in ("tool", "system"):
            in_messages = True
            chain = hashlib.blake2b(chain + message_level, digest_size=8).digest()
        material = chain + block.tag.encode("utf-8") + b"\x00" + canonical_json(block.body).encode("utf-8")
        chain = hashlib.blake2b(material, digest_size=8).digest()
        content = hashlib.blake2b(content + material[8:], digest_size=8).digest()
        keys.append(int.from_bytes(chain, "big"))
        running += block.tokens
        prefix.append(scale_tokens(running, ratio))
    empty_messages = sum(1 for m in params["messages"] if not normalised_blocks(m["content"]))
    total = scale_tokens(running + REPLY_PRIMER + MESSAGE_OVERHEAD * empty_messages, ratio)
    return PromptShape(total, tuple(prefix), tuple(keys), breakpoints, int.from_bytes(content, "big"))
