"""Request validation the way the real API does it, with its error types and ``path: problem`` messages.

``/v1/messages`` and ``count_tokens`` run these checks synchronously (HTTP 400, or 404 for an unknown
model). Inside a batch the *same* checks run on each request's ``params`` after the batch was
accepted, and a failure becomes an ``errored`` result — never an HTTP error on create.

Under ``anthropic-version: 2026-10-21`` (what SDK 2.x sends) ``temperature``, ``top_p`` and ``top_k``
are rejected; a request without the header is held to the same rule.

Model-specific rules come from the catalog (see ``docs/emulator.md`` "The late-2026 lineup" for sources):
assistant prefill is refused where ``supports_prefill`` is false (Haiku 5.5), a forced tool
(``tool_choice`` type ``tool``) where ``supports_forced_tool`` is false (the 5.5 models), and any forced tool
use (``any`` / ``tool``) while thinking is on — the documented extended-thinking restriction, which bites by
default on models that think unless told not to. ``output_config`` takes ``effort`` (low … max) and
``format`` (``{"type": "json_schema", "schema": {...}}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from nightbatch.catalog import ModelInfo, model_info
from nightbatch.emulator.content_checks import (
    check_cache_control,
    check_messages,
    check_output_config,
    check_system,
    check_thinking,
    check_tools,
    is_int,
)
from nightbatch.emulator.errors import ApiError, invalid_field
from nightbatch.errors import UnknownModelError

__all__ = [
    "CURRENT_API_VERSION",
    "INFERENCE_GEOS",
    "thinking_on",
    "validate_count_tokens_params",
    "validate_message_params",
]

CURRENT_API_VERSION: Final = "2026-10-21"

_MESSAGE_KEYS: Final = frozenset(
    {
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "max_tokens",
        "messages",
        "metadata",
        "model",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "thinking",
        "tool_choice",
        "tools",
    }
)
_COUNT_KEYS: Final = frozenset(
    {"cache_control", "messages", "model", "output_config", "speed", "system", "thinking", "tool_choice", "tools"}
)
_SAMPLING_KEYS: Final = ("temperature", "top_p", "top_k")
# Values of `inference_geo` the data-residency docs list ("global" is the default).
INFERENCE_GEOS: Final = ("global", "us")


def _check_keys(params: Mapping[str, Any], allowed: frozenset[str], api_version: str | None) -> None:
    for key in params:
        if key in _SAMPLING_KEYS:
            if api_version is None or api_version >= CURRENT_API_VERSION:
                shown = api_version or CURRENT_API_VERSION
                raise invalid_field(key, f"is not supported with anthropic-version {shown}; remove it from the request")
            continue
        if key not in allowed:
            raise invalid_field(key, "Extra inputs are not permitted")


def thinking_on(params: Mapping[str, Any], info: ModelInfo) -> bool:
    """Whether the request thinks: asked to (``enabled`` / ``adaptive``), or by the model's default."""
    thinking = params.get("thinking")
    if isinstance(thinking, Mapping):
        return thinking.get("type") in ("enabled", "adaptive")
    return info.thinks_by_default


def _check_model_features(params: Mapping[str, Any], info: ModelInfo) -> None:
    """What this model refuses (catalog flags). Messages are the emulator's own wording (unverified)."""
    messages = params["messages"]
    if not info.supports_prefill and messages[-1].get("role") == "assistant":
        raise invalid_field(
            f"messages.{len(messages) - 1}",
            f"{info.model} does not support assistant message prefill; the conversation must end with a user turn",
        )
    tool_choice = params.get("tool_choice")
    forced = tool_choice.get("type") if isinstance(tool_choice, Mapping) else None
    if forced == "tool" and not info.supports_forced_tool:
        raise invalid_field(
            "tool_choice.type", f"{info.model} does not support forced tool use (tool_choice type 'tool')"
        )
    if forced in ("any", "tool") and thinking_on(params, info):
        # The extended-thinking docs' restriction; on 5.x models thinking is on unless disabled.
        raise invalid_field("tool_choice", "Thinking may not be enabled when tool_choice forces tool use.")
    output_config = params.get("output_config")
    structured = isinstance(output_config, Mapping) and output_config.get("format") is not None
    if structured and not info.supports_structured_outputs:
        raise invalid_field("output_config.format", f"{info.model} does not support structured outputs")
    geo = params.get("inference_geo")
    if geo is not None and geo not in INFERENCE_GEOS:
        raise invalid_field("inference_geo", f"Input should be {' or '.join(repr(g) for g in INFERENCE_GEOS)}")


def _check_common(params: Mapping[str, Any]) -> None:
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_field("model", "Field required")
    check_messages(params.get("messages"))
    if "system" in params:
        check_system(params["system"])
    check_tools(params.get("tools"), params.get("tool_choice"))
    if "cache_control" in params:
        check_cache_control(params["cache_control"], "cache_control")
    check_thinking(params.get("thinking"))
    check_output_config(params.get("output_config"))


def _lookup_model(model: str, catalog_path: Path | None) -> ModelInfo:
    try:
        return model_info(model, catalog_path)
    except UnknownModelError:
        raise ApiError("not_found_error", f"model: {model}") from None


def _check_max_tokens(params: Mapping[str, Any], info: ModelInfo, minimum: int) -> None:
    if "max_tokens" not in params:
        raise invalid_field("max_tokens", "Field required")
    max_tokens = params["max_tokens"]
    if not is_int(max_tokens):
        raise invalid_field("max_tokens", "Input should be a valid integer")
    if max_tokens < minimum:
        raise invalid_field("max_tokens", f"Input should be greater than or equal to {minimum}")
    if max_tokens > info.max_output_tokens:
        raise invalid_field(
            "max_tokens",
            f"{max_tokens} > {info.max_output_tokens}, which is the maximum allowed number of output tokens "
            f"for {info.model}",
        )
    thinking = params.get("thinking")
    if isinstance(thinking, Mapping) and thinking.get("type") == "enabled" and thinking["budget_tokens"] >= max_tokens:
        raise invalid_field("max_tokens", "must be greater than thinking.budget_tokens")


def validate_message_params(
    params: object, *, in_batch: bool, api_version: str | None, catalog_path: Path | None = None
) -> ModelInfo:
    """Check Messages-create params; raise :class:`ApiError` like the API, else return the model's facts."""
    if not isinstance(params, Mapping):
        raise invalid_field("params" if in_batch else "body", "Input should be a valid dictionary")
    _check_keys(params, _MESSAGE_KEYS, api_version)
    _check_common(params)
    stream = params.get("stream")
    if stream is True:
        if in_batch:
            raise invalid_field("stream", "streaming is not supported for requests inside a Message Batch")
        raise invalid_field("stream", "streaming is not emulated by the nightbatch emulator; send stream=false")
    stop = params.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) and s.strip() for s in stop)):
        raise invalid_field("stop_sequences", "each stop sequence must be a string containing non-whitespace")
    metadata = params.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise invalid_field("metadata", "Input should be a valid dictionary")
    if params.get("service_tier") not in (None, "auto", "standard_only"):
        raise invalid_field("service_tier", "Input should be 'auto' or 'standard_only'")
    info = _lookup_model(params["model"], catalog_path)
    _check_max_tokens(params, info, minimum=1 if in_batch else 0)
    _check_model_features(params, info)
    return info


def validate_count_tokens_params(
    params: object, *, api_version: str | None, catalog_path: Path | None = None
) -> ModelInfo:
    """Check count_tokens params; raise :class:`ApiError` like the API, else return the model's facts."""
    if not isinstance(params, Mapping):
        raise invalid_field("body", "Input should be a valid dictionary")
    _check_keys(params, _COUNT_KEYS, api_version)
    _check_common(params)
    return _lookup_model(params["model"], catalog_path)
