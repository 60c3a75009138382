"""What the late-2026 lineup changes in a reply: thinking, effort, structured outputs, tokenizer family.

* **Thinking.** A request thinks when it sends ``thinking`` ``enabled`` / ``adaptive``, or says nothing on a
  model whose catalog ``thinking_default`` is ``adaptive`` (the 5.x models). The amount is deterministic
  (seed + prompt digest): a base of :data:`THINKING_BASE` tokens at effort ``medium``, scaled by
  :data:`EFFORT_SCALE`, capped by ``budget_tokens`` when given and always leaving at least one token of
  ``max_tokens`` for the answer (thinking counts toward ``max_tokens``, as on the API). The tokens are billed
  inside ``output_tokens`` and reported in ``usage.output_tokens_details.thinking_tokens``. The block's text is a
  short "summary" (``display: "omitted"`` gives an empty text); its ``signature`` is an opaque,
  deterministic string. The amounts and the effort ladder are the emulator's own choice (unverified).
* **Structured outputs.** With ``output_config.format`` the reply is JSON that validates against the schema:
  the matched responder's answer when it already conforms, else a minimal instance built from the schema
  (:func:`minimal_instance`).
* **Tokenizer family.** Counts of the ``v2`` family are the legacy formula times a ratio (1.3 by default,
  ``EmulatorConfig.tokenizer_ratios``), applied to prompt prefixes and output alike, so ``count_tokens``
  still equals the prompt side of ``usage``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import jsonschema

__all__ = [
    "DEFAULT_EFFORT",
    "EFFORT_SCALE",
    "THINKING_BASE",
    "conform_to_schema",
    "minimal_instance",
    "scale_tokens",
    "thinking_plan",
    "thinking_signature",
]

DEFAULT_EFFORT: Final = "medium"  # ANTHROPIC_API.md, late-2026: 5.x default effort is medium
EFFORT_SCALE: Final = {"low": 0.25, "medium": 1.0, "high": 2.0, "xhigh": 3.0, "max": 4.0}
THINKING_BASE: Final = (64, 512)  # thinking tokens at effort medium, chosen per request in this range


def scale_tokens(tokens: int, ratio: float) -> int:
    """``tokens`` counted by a tokenizer family ``ratio`` times as verbose (rounded up; 1.0 is exact)."""
    if ratio == 1.0:
        return tokens
    return -(-int(tokens * ratio * 1000) // 1000)


def thinking_plan(*, mode: str, effort: str | None, budget: int | None, max_tokens: int, pick: float) -> int:
    """Thinking tokens for a request (0 when it does not think).

    ``mode`` is ``off`` | ``adaptive`` | ``enabled``; ``pick`` is a deterministic number in [0, 1) for this
    request, choosing where in :data:`THINKING_BASE` it lands.
    """
    if mode == "off" or max_tokens <= 1:
        return 0
    low, high = THINKING_BASE
    base = low + int(pick * (high - low + 1))
    amount = max(1, int(base * EFFORT_SCALE[effort or DEFAULT_EFFORT]))
    if budget is not None:
        amount = min(amount, budget)
    return min(amount, max_tokens - 1)


def thinking_signature(seed: int, digest: int) -> str:
    """An opaque, deterministic signature (the SDK only requires a string)."""
    raw = hashlib.blake2b(f"thinking:{seed}:{digest}".encode(), digest_size=48).digest()
    return base64.b64encode(raw).decode("ascii")


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def conform_to_schema(text: str, schema_json: str) -> str:
    """``text`` when it is JSON valid under the schema, else a minimal valid instance as compact JSON."""
    try:
        if _validator(schema_json).is_valid(json.loads(text)):
            return text
    except (ValueError, jsonschema.exceptions.SchemaError):
        pass
    return json.dumps(minimal_instance(json.loads(schema_json)), separators=(",", ":"), ensure_ascii=False)


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: Any = root
    for part in ref[2:].split("/"):
        target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, Mapping) else {}
    return _resolve(target, root) if isinstance(target, Mapping) else {}


def minimal_instance(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """The smallest plausible value valid under ``schema``: deterministic, no randomness.

    Objects get their required properties, enums and consts their first value, strings ``minLength`` x
    ``"x"`` (or a placeholder), numbers their minimum (or 0), arrays ``minItems`` items. Covers the subset
    structured outputs accept ($ref to local $defs, anyOf/oneOf/allOf, nullable type lists).
    """
    root = schema if root is None else root
    node = _resolve(schema, root)
    if depth > 32:
        return None
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list) and node[key]:
            return minimal_instance(node[key][0], root, depth + 1)
    if isinstance(node.get("allOf"), list) and node["allOf"]:
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            resolved = _resolve(part, root)
            merged.setdefault("required", []).extend(resolved.get("required", []))
            merged.setdefault("properties", {}).update(resolved.get("properties", {}))
            merged.update({k: v for k, v in resolved.items() if k not in ("required", "properties")})
        return minimal_instance(merged, root, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in node else "string"
    if kind == "object":
        properties = node.get("properties") or {}
        return {
            name: minimal_instance(properties.get(name, {}), root, depth + 1) for name in node.get("required") or []
        }
    if kind == "array":
        count = int(node.get("minItems", 0))
        items = node.get("items")
        items = items if isinstance(items, Mapping) else {}
        return [minimal_instance(items, root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        value = node.get("minimum", node.get("exclusiveMinimum", 0))
        if "exclusiveMinimum" in node and "minimum" not in node:
            value = value + 1
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    length = int(node.get("minLength", 0))
    if length:
        return "x" * length
    return "" if int(node.get("maxLength", 3)) < 3 else "n/a"
