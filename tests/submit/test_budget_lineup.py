"""The budget's per-request bound knows the lineup's pricing: US inference 1.1x, Haiku 5.5's long-prompt band."""

from __future__ import annotations

from decimal import Decimal

from nightbatch.build.requests import RequestBuilder
from nightbatch.pricing import load_price_table
from nightbatch.submit.budget import request_bound_usd
from nightbatch.tasktypes import TaskType


def bound(text: str, **overrides: object) -> Decimal:
    fields: dict[str, object] = {"name": "t", "model": "claude-haiku-5-5", "max_tokens": 100, "thinking": "disabled"}
    fields.update(overrides)
    request = RequestBuilder().build(1, 1, TaskType.model_validate(fields), "claude-haiku-5-5", {"text": text})
    return request_bound_usd(load_price_table(), request, None)


def test_us_inference_raises_the_bound_by_a_tenth() -> None:
    assert bound("hello", inference_geo="us") == bound("hello") * Decimal("1.1")


def test_a_prompt_over_the_band_is_bounded_at_the_band_prices() -> None:
    # ~4 bytes per token (of the messages' JSON): under, then over Haiku 5.5's 100,000-token threshold.
    short, long = bound("x" * 399_900), bound("x" * 400_100)
    assert long > short * 4  # the band is 5x on every token, output included
