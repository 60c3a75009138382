"""JSON on the hot paths (result lines, output shards, bulk rows): orjson, with the standard library behind it.

orjson parses a result line about 3x and writes a shard line about 20x faster than :mod:`json` (see
``docs/benchmarks.md``), which is most of what ingesting a result costs. It is stricter than the standard
library in two places, where we fall back to :mod:`json` rather than lose a line:

- a lone surrogate escape (``"\\ud800"``) is valid JSON text that orjson refuses to parse or to write;
- integers beyond 64 bits, which orjson refuses to write.

Both fallbacks run only for the rare line that needs them.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "dumps_line", "loads"]


def loads(data: bytes | str) -> Any:
    """Parse JSON text; raises ``ValueError`` (as :func:`json.loads` does) when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # orjson refuses some valid JSON (lone surrogates); json decides


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, non-ASCII characters as themselves (``ensure_ascii=False``, no spaces)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: lone surrogates, huge ints, types it does not know
        # ensure_ascii escapes what UTF-8 cannot carry (a lone surrogate) instead of failing on it.
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def dumps_line(value: Any) -> bytes:
    """:func:`dumps` plus the newline that ends a JSONL line."""
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return dumps(value) + b"\n"
