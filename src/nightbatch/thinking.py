"""Thinking, effort, structured outputs and data residency: the per-type request settings, and what they cost.

A task type says, in its TOML table::

    thinking = "disabled"            # or "adaptive", or { budget_tokens = 2048 }
    effort = "low"                   # low | medium | high | xhigh | max
    structured = true                # send output_schema as output_config.format (models that support it)
    inference_geo = "us"             # US-only inference: every token 1.1x

and :func:`request_settings` turns that into the Messages params the API expects (SDK 2.x types
``ThinkingConfigParam`` / ``OutputConfigParam``): ``thinking: {"type": "disabled"}`` /
``{"type": "adaptive"}`` / ``{"type": "enabled", "budget_tokens": N}``, ``output_config: {"effort": ...,
"format": {"type": "json_schema", "schema": ...}}``, ``inference_geo: "us"``.

Why it matters: the 5.x models think **unless told not to** (adaptive thinking, effort ``medium``), and
thinking tokens are billed as output. For a one-word classification that can cost more than the answer,
so a type routed to such a model that does not say what it wants is a load-time warning
(:func:`thinking_warning`) with the cost at stake, estimated from :data:`DEFAULT_THINKING_TOKENS`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nightbatch.catalog import ModelInfo

__all__ = [
    "DEFAULT_THINKING_TOKENS",
    "Effort",
    "ThinkingBudget",
    "ThinkingChoice",
    "expected_thinking_tokens",
    "request_settings",
    "thinking_warning",
]

Effort = Literal["low", "medium", "high", "xhigh", "max"]

DEFAULT_THINKING_TOKENS = 600
"""Thinking tokens per request assumed when a model thinks and the ledger has no history for the type.

A stated guess (unverified: Anthropic publishes no typical figure for adaptive thinking at ``medium``
effort), used by the forecast and by the load-time warning until measured output replaces it. Thinking
counts toward ``max_tokens``, so an estimate is never above it.
"""


class ThinkingBudget(BaseModel):
    """``thinking = { budget_tokens = N }``: manual extended thinking with a fixed budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_tokens: int = Field(ge=1024, description="At least 1,024 and below the type's max_tokens (API rule).")


ThinkingChoice = Literal["disabled", "adaptive"] | ThinkingBudget


def thinking_param(choice: ThinkingChoice) -> dict[str, Any]:
    """The ``thinking`` param for a configured choice."""
    if isinstance(choice, ThinkingBudget):
        return {"type": "enabled", "budget_tokens": choice.budget_tokens}
    return {"type": choice}


def request_settings(
    *,
    thinking: ThinkingChoice | None,
    effort: Effort | None,
    output_format: dict[str, Any] | None,
    inference_geo: str | None,
) -> dict[str, Any]:
    """The params beyond model/max_tokens/tools/system/messages a type's requests carry, in a fixed order.

    Empty when the type sets none of them (the request is then byte-identical to what it was before these
    settings existed). ``output_format`` is the JSON schema to send as ``output_config.format``.
    """
    settings: dict[str, Any] = {}
    if thinking is not None:
        settings["thinking"] = thinking_param(thinking)
    output_config: dict[str, Any] = {}
    if effort is not None:
        output_config["effort"] = effort
    if output_format is not None:
        output_config["format"] = {"type": "json_schema", "schema": output_format}
    if output_config:
        settings["output_config"] = output_config
    if inference_geo is not None:
        settings["inference_geo"] = inference_geo
    return settings


def thinks(info: ModelInfo, thinking: ThinkingChoice | None) -> bool:
    """Whether requests with this setting may produce (and bill) thinking tokens on this model."""
    if thinking is None:
        return info.thinks_by_default
    return thinking != "disabled"


def expected_thinking_tokens(
    info: ModelInfo, thinking: ThinkingChoice | None, max_tokens: int, history: float | None = None
) -> int:
    """Thinking tokens per request to expect: none when off, else history, else the stated default (capped)."""
    if not thinks(info, thinking):
        return 0
    if history is not None:
        return min(int(history), max_tokens)
    if isinstance(thinking, ThinkingBudget):
        return min(thinking.budget_tokens, max_tokens)
    return min(DEFAULT_THINKING_TOKENS, max_tokens)


def thinking_warning(type_name: str, info: ModelInfo, max_tokens: int, output_usd_per_mtok: Decimal | None) -> str:
    """The load-time warning for a type that leaves a thinking-by-default model to think as it likes."""
    tokens = expected_thinking_tokens(info, None, max_tokens)
    if output_usd_per_mtok is None:
        cost = "an unknown cost (the price table has no row for it)"
    else:  # 1,000 tasks at the batch price
        per_thousand = Decimal(tokens) * output_usd_per_mtok / 1000 * Decimal("0.5")
        cost = f"about ${per_thousand:,.4f} per 1,000 tasks at batch prices"
    capped = " (capped by its max_tokens: thinking counts toward it and may leave no room for the answer)"
    return (
        f"task type {type_name!r} routes to {info.model}, which thinks by default (billed as output), and does "
        f'not say what it wants: set thinking = "disabled" | "adaptive" | {{ budget_tokens = N }}. At stake: '
        f"~{tokens:,} thinking tokens per task{capped if tokens == max_tokens else ''}, {cost} (estimate: "
        f"{DEFAULT_THINKING_TOKENS:,} tokens per request assumed until the ledger has history)"
    )
