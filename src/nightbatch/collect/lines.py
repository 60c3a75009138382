"""Checking one result line before it may touch a task or the ledger.

A line from the provider is trusted only once its shape is right: a known result type, a message with a
list of content blocks and integer usage counts. Anything else is reported by batch and custom_id, and its
task is re-queued (see :mod:`nightbatch.collect.ingest`). A model without a price row is NOT a bad line:
the provider billed it, so it is booked as unpriced (see :mod:`nightbatch.collect.rows`).
"""

from __future__ import annotations

from typing import Any

from nightbatch.services import Services

__all__ = ["line_problem"]

_RESULT_TYPES = frozenset({"succeeded", "errored", "canceled", "expired"})
_USAGE_COUNTS = ("input_tokens", "output_tokens")
_OPTIONAL_COUNTS = ("cache_creation_input_tokens", "cache_read_input_tokens")


def line_problem(services: Services, line: dict[str, Any], fallback_model: str) -> str | None:
    """Why a result line cannot be trusted (None when it can): checked before it may touch a task or the ledger."""
    result = line.get("result")
    if not isinstance(result, dict) or result.get("type") not in _RESULT_TYPES:
        return "result is not an object with a known type"
    if result["type"] == "errored":
        error = result.get("error")
        if error is not None and (not isinstance(error, dict) or not isinstance(error.get("error", {}), dict)):
            return "errored result with a malformed error object"
    if result["type"] != "succeeded":
        return None
    message = result.get("message")
    if not isinstance(message, dict):
        return "succeeded result without a message object"
    content = message.get("content")
    if not isinstance(content, list) or not all(isinstance(block, dict) for block in content):
        return "message content is not a list of blocks"
    usage = message.get("usage")
    if not isinstance(usage, dict):
        return "succeeded result without usage: it cannot be priced"
    for name in _USAGE_COUNTS:
        if not isinstance(usage.get(name), int) or isinstance(usage.get(name), bool) or usage[name] < 0:
            return f"usage.{name} is not a non-negative integer"
    for name in _OPTIONAL_COUNTS:
        value = usage.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return f"usage.{name} is not a non-negative integer"
    creation = usage.get("cache_creation")
    if creation is not None and (
        not isinstance(creation, dict)
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in creation.values() if v is not None
        )
    ):
        return "usage.cache_creation is malformed"
    model = message.get("model") or fallback_model
    if not isinstance(model, str):
        return f"message model {model!r} is not a string"
    return None
