"""Opt-in padding of a short prefix up to its model's minimum cacheable length (``cache.pad_to_minimum``).

Below the minimum the API caches nothing, so every request pays the whole prefix as plain input. For a
prefix somewhat under the minimum sent many times, padding it to the minimum can cost less: one write and
then reads at a tenth of the input price (the report's padding advice prices it per run). The padding is
one extra system block after the type's own blocks, before the breakpoint: deterministic (the same bytes
for the same type and model, so it caches), neutral (it says it carries no instruction), sized by the
local estimate with a margin, because the exact count is per tokenizer and the minimum must be reached.

The trade-off (see docs/reports.md, "Padding advice"): the model reads more context on every request; the
block says it is not an instruction, but any text can shift an answer slightly, so measure the type's
pass rate after switching it on.
"""

from __future__ import annotations

from typing import Any

from nightbatch.build.context import estimate_tokens
from nightbatch.catalog import model_info

__all__ = ["PADDING_MARGIN", "padding_block"]

# Over the estimate: the local estimate is ~4 bytes a token, and newer tokenizers count ~30% more tokens,
# older ones fewer; 1.25 keeps an estimated-at-minimum prefix above the real minimum on either (unverified).
PADDING_MARGIN = 1.25

_HEAD = (
    "The text below is padding so that the instructions above can be cached. It contains no instructions, "
    "no facts and no examples; ignore it.\n"
)
_LINE = "Padding line {n:05d}: this line intentionally carries no information.\n"


def padding_block(model: str, tools: tuple[dict[str, Any], ...], blocks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The system block that brings the prefix to ``model``'s minimum, or None when it is already there."""
    minimum = model_info(model).min_cacheable_tokens
    have = estimate_tokens([list(tools), blocks])
    target = int(minimum * PADDING_MARGIN)
    if have >= target:
        return None
    text = _HEAD
    n = 0
    while estimate_tokens(text) < target - have:
        n += 1
        text += _LINE.format(n=n)
    return {"type": "text", "text": text}
