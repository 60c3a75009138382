"""Checks of what a Messages request says: its messages and content blocks, system prompt, tools and tool
choice, cache markers, thinking and output config, each failing with the API's ``path: problem`` message.

The request-level checks (which keys, which model, ``max_tokens``, what the model refuses) are
:mod:`nightbatch.emulator.validation`'s; it calls these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, TypeGuard

from nightbatch.emulator.errors import invalid_field

__all__ = [
    "EFFORTS",
    "check_cache_control",
    "check_messages",
    "check_output_config",
    "check_system",
    "check_thinking",
    "check_tools",
    "is_int",
]

MAX_MESSAGES: Final = 100_000
_ROLES: Final = ("user", "assistant", "system")
_UNCACHEABLE_BLOCKS: Final = frozenset({"thinking", "redacted_thinking"})
_TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TOOL_CHOICES: Final = ("auto", "any", "tool", "none")
EFFORTS: Final = ("low", "medium", "high", "xhigh", "max")
MIN_THINKING_BUDGET: Final = 1024
_THINKING_TYPES: Final = ("enabled", "disabled", "adaptive")
_THINKING_KEYS: Final = {"enabled": ("type", "budget_tokens", "display"), "adaptive": ("type", "display")}
_DISPLAYS: Final = (None, "summarized", "omitted")


def is_int(value: object) -> TypeGuard[int]:
    """An integer, and not a bool (JSON ``true`` is not a token count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_cache_control(value: object, path: str) -> None:
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
        check_cache_control(block["cache_control"], f"{path}.cache_control")


def check_messages(messages: object) -> None:
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


def check_system(system: object) -> None:
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid_field("system", "Input should be a valid string or list of text blocks")
    for position, block in enumerate(system):
        _check_block(block, f"system.{position}", text_only=True)


def check_tools(tools: object, tool_choice: object) -> None:
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
            check_cache_control(tool["cache_control"], f"{path}.cache_control")
    if tool_choice is None:
        return
    if not isinstance(tool_choice, Mapping) or tool_choice.get("type") not in _TOOL_CHOICES:
        raise invalid_field("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    if tool_choice["type"] in ("any", "tool") and not names:
        raise invalid_field("tool_choice", "tool_choice may only be specified while providing tools")
    if tool_choice["type"] == "tool" and tool_choice.get("name") not in names:
        raise invalid_field("tool_choice.name", f"tool {tool_choice.get('name')!r} is not among the provided tools")


def check_thinking(thinking: object) -> None:
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
        if not is_int(budget):
            raise invalid_field(path, "Field required" if budget is None else "Input should be a valid integer")
        if budget < MIN_THINKING_BUDGET:
            raise invalid_field(path, f"Input should be greater than or equal to {MIN_THINKING_BUDGET}")


def check_output_config(config: object) -> None:
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
