"""The stable prefix of a request (tools, then system prompt and shared documents) and its cache marker.

Prompt caching hits only when the prefix is byte-identical, so a prefix is built once per
(task type, model) and every request of that type shares the very same objects; serialization
(:func:`canonical_json`) is fixed: insertion-ordered keys, no whitespace, UTF-8. The breakpoint goes on
the last block of the prefix (the last system block, or the last tool when there is no system), so
everything per-task comes after it and is billed as plain input.

A prefix also carries the type's request *settings* (``thinking``, ``output_config`` with effort and
structured-output format, ``inference_geo``: see :mod:`nightbatch.thinking`). They are not cached
content, but they decide what the cache can reuse (thinking/effort changes invalidate message-level
entries, a changed ``output_config.format`` the whole cache) and what the request costs, so they are part
of the prefix hash: two types that differ only in them are packed and cached as different groups.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from nightbatch.tasktypes import TaskType

__all__ = ["CacheTTL", "Prefix", "canonical_json", "prefix_for"]

CacheTTL = Literal["5m", "1h"]


def canonical_json(value: Any) -> bytes:
    """The one serialization nightbatch sends: compact, key order as built, UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _cache_control(ttl: CacheTTL) -> dict[str, str]:
    # "ephemeral" alone means 5 minutes; the 1-hour TTL is GA and needs no beta header.
    return {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": "1h"}


@dataclass(frozen=True)
class Prefix:
    """Tools and system blocks shared by every request of one task type on one model."""

    model: str
    tools: tuple[dict[str, Any], ...]
    system_blocks: tuple[dict[str, Any], ...]
    settings: dict[str, Any] = field(default_factory=dict)
    """Params sent after ``system`` (thinking, output_config, inference_geo), in this order."""
    _rendered: dict[CacheTTL | None, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def hash(self) -> str:
        """Identifies the prefix: requests with equal hashes can share cache entries."""
        parts: list[Any] = [self.model, list(self.tools), list(self.system_blocks)]
        if self.settings:  # without settings the hash is what it always was
            parts.append(self.settings)
        digest = hashlib.sha256(canonical_json(parts))
        return digest.hexdigest()[:16]

    @property
    def is_empty(self) -> bool:
        return not self.tools and not self.system_blocks

    def render(self, ttl: CacheTTL | None) -> dict[str, Any]:
        """The ``tools`` / ``system`` params, with a breakpoint on the last block when ``ttl`` is set.

        The same dict is returned for the same ``ttl``, so a batch of thousands of requests holds one copy.
        """
        if ttl in self._rendered:
            return self._rendered[ttl]
        tools = [dict(t) for t in self.tools]
        system = [dict(b) for b in self.system_blocks]
        if ttl is not None:
            last = system[-1] if system else tools[-1] if tools else None
            if last is not None:
                last["cache_control"] = _cache_control(ttl)
        params: dict[str, Any] = {}
        if tools:
            params["tools"] = tools
        if system:
            params["system"] = system
        self._rendered[ttl] = params
        return params


def prefix_for(task_type: TaskType, model: str) -> Prefix:
    """The stable prefix of ``task_type`` when sent to ``model``."""
    blocks: list[dict[str, Any]] = []
    if task_type.system:
        blocks.append({"type": "text", "text": task_type.system})
    blocks.extend({"type": "text", "text": doc} for doc in task_type.documents)
    return Prefix(
        model=model, tools=task_type.tools, system_blocks=tuple(blocks), settings=task_type.settings_for(model)
    )
