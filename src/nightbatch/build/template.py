"""Rendering a task payload into the user turn.

Templates use ``{field}`` and dotted ``{field.sub}`` references into the payload; ``{{`` and ``}}`` are
literal braces. Lists render one item per line; objects render as compact JSON. A reference to a field
the payload lacks is an :class:`InputError` naming the field, so the one task fails, not the run.
"""

from __future__ import annotations

import json
import re
from typing import Any

from nightbatch.errors import InputError

__all__ = ["check_fields", "render"]

_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")


def _lookup(payload: dict[str, Any], dotted: str) -> Any:
    value: Any = payload
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise InputError(f"template field {{{dotted}}}: the payload has no {part!r}")
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_as_text(v) for v in value)
    if isinstance(value, dict) and set(value) >= {"role", "content"}:
        return f"{value['role']}: {_as_text(value['content'])}"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render(template: str, payload: dict[str, Any]) -> str:
    """Fill ``template`` from ``payload``."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return _as_text(_lookup(payload, match.group(1)))

    return _FIELD.sub(substitute, template)


def check_fields(template: str, payload: dict[str, Any]) -> None:
    """Raise :class:`InputError` naming the first field of ``template`` that ``payload`` lacks.

    Enqueueing runs this on every task, so a typo in a template or a payload is caught before any task
    is claimed, not as one ``invalid_task`` failure per task at submit.
    """
    for match in _FIELD.finditer(template):
        if match.group(1) is not None:
            _lookup(payload, match.group(1))
