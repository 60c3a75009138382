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

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from nightbatch.catalog import ModelInfo, model_info
from nightbatch.emulator.errors import ApiError, invalid_field
from nightbatch.errors import UnknownModelError

__all__ = [
    "CURRENT_API_VERSION",
    "EFFORTS",
    "INFERENCE_GEOS",
    "thinking_on",
    "validate_batch_body",
    "validate_count_tokens_params",
    "validate_message_params",
]

CURRENT_API_VERSION: Final = "2026-10-21"
MAX_MESSAGES: Final = 100_000

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
_ROLES: Final = ("user", "assistant", "system")
_UNCACHEABLE_BLOCKS: Final = frozenset({"thinking", "redacted_thinking"})
_TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_CUSTOM_ID: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOOL_CHOICES: Final = ("auto", "any", "tool", "none")
EFFORTS: Final = ("low", "medium", "high", "xhigh", "max")
MIN_THINKING_BUDGET: Final = 1024
_THINKING_TYPES: Final = ("enabled", "disabled", "adaptive")
_THINKING_KEYS: Final = {"enabled": ("type", "budget_tokens", "display"), "adaptive": ("type", "display")}
_DISPLAYS: Final = (None, "summarized", "omitted")
# Values of `inference_geo` the data-residency docs list ("global" is the default).
INFERENCE_GEOS: Final = ("global", "us")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(params: Mapping[str, Any], allowed: frozenset[str], api_version: str | None) -> None:
    for key in params:
        if key in _SAMPLING_KEYS:
            if api_version is None or api_version >= CURRENT_API_VERSION:
                shown = api_version or CURRENT_API_VERSION
                raise invalid_field(key, f"is not supported with anthropic-version {shown}; remove it from the request")
            continue
        if key not in allowed:
            raise invalid_field(key, "Extra inputs are not permitted")


def _check_cache_control(value: object, path: str) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise invalid_field(path, "Input should be a valid dictionary")
    if value.get("type") != "ephemeral":
        raise invalid_field(f"{path}.type", "Input should be 'ephemeral'")
    if "ttl" in value and value["ttl"] not in ("5m", "1h"):
        raise invalid_field(f"{path}.ttl", "Input should be '5m' or '1h'")
    for key in value:
        if key not in ("type", "ttl"):
            raise invalid_field(f"{path}.{key}", "Extra inputs are not permitted")


def _check_block(block: object, path: str, *, text_only: bool = False) -> None:
    if not isinstance(block, Mapping):
        raise invalid_field(path, "Input should be a valid dictionary")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise invalid_field(f"{path}.type", "Field required")
    if text_only and kind != "text":
        raise invalid_field(f"{path}.type", "Input should be 'text'")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise invalid_field(f"{path}.text", "Field required")
        if not text:
            raise invalid_field(path, "text content blocks must be non-empty")
    elif kind == "image" and not isinstance(block.get("source"), Mapping):
        raise invalid_field(f"{path}.source", "Field required")
    elif kind == "tool_use" and not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)):
        raise invalid_field(path, "tool_use blocks need string `id` and `name`")
    elif kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        raise invalid_field(f"{path}.tool_use_id", "Field required")
    if "cache_control" in block:
        if kind in _UNCACHEABLE_BLOCKS and block["cache_control"] is not None:
            raise invalid_field(f"{path}.cache_control", f"cache_control cannot be set on {kind} blocks")
        _check_cache_control(block["cache_control"], f"{path}.cache_control")


def _check_messages(messages: object) -> None:
    if not isinstance(messages, list):
        raise invalid_field("messages", "Input should be a valid list")
    if not messages:
        raise invalid_field("messages", "at least one message is required")
    if len(messages) > MAX_MESSAGES:
        raise invalid_field("messages", f"too many messages: {len(messages)} > {MAX_MESSAGES}")
    last = len(messages) - 1
    for index, message in enumerate(messages):
        path = f"messages.{index}"
        if not isinstance(message, Mapping):
            raise invalid_field(path, "Input should be a valid dictionary")
        role = message.get("role")
        if role not in _ROLES:
            raise invalid_field(f"{path}.role", "Input should be 'user', 'assistant' or 'system'")
        if "content" not in message:
            raise invalid_field(f"{path}.content", "Field required")
        content = message["content"]
        for key in message:
            if key not in ("role", "content"):
                raise invalid_field(f"{path}.{key}", "Extra inputs are not permitted")
        empty = content == "" or content == []
        if empty and not (index == last and role == "assistant"):
            raise invalid_field(
                path, "all messages must have non-empty content except for the optional final assistant message"
            )
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise invalid_field(f"{path}.content", "Input should be a valid string or list of content blocks")
        for position, block in enumerate(content):
            _check_block(block, f"{path}.content.{position}", text_only=role == "system")


def _check_system(system: object) -> None:
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid_field("system", "Input should be a valid string or list of text blocks")
    for position, block in enumerate(system):
        _check_block(block, f"system.{position}", text_only=True)


def _check_tools(tools: object, tool_choice: object) -> None:
    if tools is not None and not isinstance(tools, list):
        raise invalid_field("tools", "Input should be a valid list")
    names: set[str] = set()
    for position, tool in enumerate(tools or []):
        path = f"tools.{position}"
        if not isinstance(tool, Mapping):
            raise invalid_field(path, "Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise invalid_field(f"{path}.name", "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'")
        if tool.get("type") in (None, "custom") and not isinstance(tool.get("input_schema"), Mapping):
            raise invalid_field(f"{path}.input_schema", "Field required")
        if name in names:
            raise invalid_field("tools", "Tool names must be unique.")
        names.add(name)
        if "cache_control" in tool:
            _check_cache_control(tool["cache_control"], f"{path}.cache_control")
    if tool_choice is None:
        return
    if not isinstance(tool_choice, Mapping) or tool_choice.get("type") not in _TOOL_CHOICES:
        raise invalid_field("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    if tool_choice["type"] in ("any", "tool") and not names:
        raise invalid_field("tool_choice", "tool_choice may only be specified while providing tools")
    if tool_choice["type"] == "tool" and tool_choice.get("name") not in names:
        raise invalid_field("tool_choice.name", f"tool {tool_choice.get('name')!r} is not among the provided tools")


def _check_thinking(thinking: object) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, Mapping) or thinking.get("type") not in _THINKING_TYPES:
        raise invalid_field("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'")
    kind = str(thinking["type"])
    for key in thinking:
        if key not in _THINKING_KEYS.get(kind, ("type",)):
            raise invalid_field(f"thinking.{kind}.{key}", "Extra inputs are not permitted")
    if thinking.get("display") not in _DISPLAYS:
        raise invalid_field(f"thinking.{kind}.display", "Input should be 'summarized' or 'omitted'")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        path = "thinking.enabled.budget_tokens"
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise invalid_field(path, "Field required" if budget is None else "Input should be a valid integer")
        if budget < MIN_THINKING_BUDGET:
            raise invalid_field(path, f"Input should be greater than or equal to {MIN_THINKING_BUDGET}")


def _check_output_config(config: object) -> None:
    if config is None:
        return
    if not isinstance(config, Mapping):
        raise invalid_field("output_config", "Input should be a valid dictionary")
    for key in config:
        if key not in ("effort", "format"):
            raise invalid_field(f"output_config.{key}", "Extra inputs are not permitted")
    effort = config.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise invalid_field("output_config.effort", "Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    shape = config.get("format")
    if shape is None:
        return
    if not isinstance(shape, Mapping):
        raise invalid_field("output_config.format", "Input should be a valid dictionary")
    if shape.get("type") != "json_schema":
        raise invalid_field("output_config.format.type", "Input should be 'json_schema'")
    if not isinstance(shape.get("schema"), Mapping):
        problem = "Field required" if "schema" not in shape else "Input should be a valid dictionary"
        raise invalid_field("output_config.format.schema", problem)
    for key in shape:
        if key not in ("type", "schema"):
            raise invalid_field(f"output_config.format.{key}", "Extra inputs are not permitted")


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
    _check_messages(params.get("messages"))
    if "system" in params:
        _check_system(params["system"])
    _check_tools(params.get("tools"), params.get("tool_choice"))
    if "cache_control" in params:
        _check_cache_control(params["cache_control"], "cache_control")
    _check_thinking(params.get("thinking"))
    _check_output_config(params.get("output_config"))


def _lookup_model(model: str, catalog_path: Path | None) -> ModelInfo:
    try:
        return model_info(model, catalog_path)
    except UnknownModelError:
        raise ApiError("not_found_error", f"model: {model}") from None


def _check_max_tokens(params: Mapping[str, Any], info: ModelInfo, minimum: int) -> None:
    if "max_tokens" not in params:
        raise invalid_field("max_tokens", "Field required")
    max_tokens = params["max_tokens"]
    if not _is_int(max_tokens):
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


def validate_batch_body(body: object, max_requests: int) -> list[Mapping[str, Any]]:
    """A Message Batch body's requests, or the 400 the API answers for a malformed body.

    Only the structure (``requests``, each with a unique ``custom_id`` and a ``params`` object) is checked
    here, and a failure rejects the whole batch; each request's params are checked on their own later.
    """
    if not isinstance(body, Mapping):
        raise invalid_field("body", "Input should be a valid dictionary")
    for key in body:
        if key != "requests":
            raise invalid_field(key, "Extra inputs are not permitted")
    items = body.get("requests")
    if not isinstance(items, list):
        raise invalid_field("requests", "Field required" if items is None else "Input should be a valid list")
    if not 1 <= len(items) <= max_requests:
        raise invalid_field("requests", f"List should have between 1 and {max_requests} items, not {len(items)}")
    seen: set[str] = set()
    for index, item in enumerate(items):
        path = f"requests.{index}"
        if not isinstance(item, Mapping):
            raise invalid_field(path, "Input should be a valid dictionary")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise invalid_field(f"{path}.custom_id", "String should match pattern '^[a-zA-Z0-9_-]{1,64}$'")
        if custom_id in seen:
            raise invalid_field(f"{path}.custom_id", f"duplicate custom_id {custom_id!r}; must be unique in a batch")
        seen.add(custom_id)
        if not isinstance(item.get("params"), Mapping):
            raise invalid_field(f"{path}.params", "Input should be a valid dictionary")
        for key in item:
            if key not in ("custom_id", "params"):
                raise invalid_field(f"{path}.{key}", "Extra inputs are not permitted")
    return items
