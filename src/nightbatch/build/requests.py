"""Building one Messages request per claimed task.

A request is the type's shared :class:`~nightbatch.build.prefix.Prefix` plus a per-task tail
(``max_tokens`` and ``messages``). The prefix's cache marker is applied later, per group, once the
packer knows how many requests share it (see :mod:`nightbatch.build.cache_ttl`).

A request's bytes are composed, never re-serialized whole: the prefix (kilobytes, shared by thousands of
requests) is serialized once per TTL, and each request adds its own few hundred bytes around it, so
sizing and writing 100,000 requests costs about what their tails cost. The result is byte for byte
``canonical_json(request.entry(ttl))``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nightbatch import custom_ids
from nightbatch.build.context import estimate_tokens, trim_payload
from nightbatch.build.prefix import CacheTTL, Prefix, canonical_json, prefix_for
from nightbatch.build.template import render
from nightbatch.tasktypes import TaskType

__all__ = ["BuiltRequest", "RequestBuilder"]


@dataclass(frozen=True, slots=True)  # no per-request __dict__: a batch holds 100,000 of them
class BuiltRequest:
    """One task's request, ready to be packed into a batch."""

    task_id: int
    custom_id: str
    task_type: str
    prefix: Prefix
    max_tokens: int
    messages: tuple[dict[str, Any], ...]
    tail_tokens: int
    trimmed_tokens: int

    @property
    def model(self) -> str:
        return self.prefix.model

    def params(self, ttl: CacheTTL | None) -> dict[str, Any]:
        """The Messages ``params`` with the prefix cached at ``ttl`` (or not at all)."""
        return {
            "model": self.prefix.model,
            "max_tokens": self.max_tokens,
            **self.prefix.render(ttl),
            **self.prefix.settings,
            "messages": list(self.messages),
        }

    def entry(self, ttl: CacheTTL | None) -> dict[str, Any]:
        """The batch entry ``{"custom_id", "params"}``."""
        return {"custom_id": self.custom_id, "params": self.params(ttl)}

    def entry_bytes(self, ttl: CacheTTL | None) -> bytes:
        """``canonical_json(self.entry(ttl))``, composed around the prefix serialized once."""
        head, prefix, tail = self._parts(ttl)
        return b"".join((head, prefix, tail))

    def entry_size(self, ttl: CacheTTL | None) -> int:
        """``len(self.entry_bytes(ttl))``, without building the bytes."""
        head, prefix, tail = self._parts(ttl)
        return len(head) + len(prefix) + len(tail)

    def _parts(self, ttl: CacheTTL | None) -> tuple[bytes, bytes, bytes]:
        # The layout of entry(): {"custom_id":…,"params":{"model":…,"max_tokens":…,<prefix>,<settings>,"messages":[…]}}
        max_tokens = str(self.max_tokens) if type(self.max_tokens) is int else _dumps(self.max_tokens)
        head = f'{{"custom_id":{_dumps(self.custom_id)},"params":{{"model":{_dumps(self.prefix.model)},'
        head += f'"max_tokens":{max_tokens}'
        tail = f',"messages":{_dumps(self.messages)}}}}}'
        return head.encode("utf-8"), _prefix_params(self.prefix, ttl), tail.encode("utf-8")


# canonical_json's settings, as one shared encoder: json.dumps would build a new one per call.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


_PREFIX_PARAMS: dict[tuple[str, CacheTTL | None], bytes] = {}


def _prefix_params(prefix: Prefix, ttl: CacheTTL | None) -> bytes:
    """The prefix's params (``,"tools":[…],"system":[…],"thinking":…``) as they sit in a request, serialized once."""
    key = (prefix.hash, ttl)  # the hash covers model, tools, system and settings: equal hashes, equal bytes
    found = _PREFIX_PARAMS.get(key)
    if found is None:
        rendered = canonical_json({**prefix.render(ttl), **prefix.settings})  # {"tools":[…],…} or {}
        found = b"," + rendered[1:-1] if len(rendered) > 2 else b""
        if len(_PREFIX_PARAMS) >= 1024:  # a long-lived worker may see many configurations; keep it small
            _PREFIX_PARAMS.clear()
        _PREFIX_PARAMS[key] = found
    return found


def _messages(payload: dict[str, Any], user_turn: str) -> list[dict[str, Any]]:
    conversation = payload.get("conversation")
    turns: list[dict[str, Any]] = []
    if isinstance(conversation, list) and all(isinstance(t, dict) and "role" in t for t in conversation):
        turns = [{"role": t["role"], "content": t["content"]} for t in conversation]
    if not turns or turns[-1]["role"] != "user":
        turns.append({"role": "user", "content": user_turn})
    return turns


class RequestBuilder:
    """Builds requests, sharing one prefix object per (task type, model)."""

    def __init__(self) -> None:
        self._prefixes: dict[tuple[str, str], Prefix] = {}

    def prefix(self, task_type: TaskType, model: str) -> Prefix:
        key = (task_type.name, model)
        if key not in self._prefixes:
            self._prefixes[key] = prefix_for(task_type, model)
        return self._prefixes[key]

    def build(
        self, task_id: int, attempt: int, task_type: TaskType, model: str, payload: dict[str, Any]
    ) -> BuiltRequest:
        """Trim ``payload`` by the type's context policy and render it after the shared prefix.

        Raises :class:`~nightbatch.errors.InputError` when the payload lacks a field the template needs.
        """
        trimmed = trim_payload(payload, task_type.context)
        messages = _messages(trimmed.payload, render(task_type.template, trimmed.payload))
        return BuiltRequest(
            task_id=task_id,
            # Unbound: the batch row and installation are filled in when the pending row is written.
            custom_id=custom_ids.build(custom_ids.Kind.TASK, task_id, attempt),
            task_type=task_type.name,
            prefix=self.prefix(task_type, model),
            max_tokens=task_type.max_tokens,
            messages=tuple(messages),
            tail_tokens=estimate_tokens(messages),
            trimmed_tokens=trimmed.tokens_removed,
        )
