"""Running one Messages request: validate, lay out the prompt, write the reply, count its tokens.

Shared by real-time ``/v1/messages`` and batch processing, so both paths validate, cache and count
identically. Requests are *prepared* once (validation + prompt layout + what responders need) into
a compact :class:`PreparedRequest`; the params dict itself is not kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from nightbatch.emulator.cache import CachePlan
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.ids import unit_interval
from nightbatch.emulator.lineup import conform_to_schema, scale_tokens, thinking_plan
from nightbatch.emulator.prompt import PromptShape, analyse_prompt
from nightbatch.emulator.responders import ResponderChain, ResponderRequest, build_responder_request
from nightbatch.emulator.tokenizer import text_tokens, truncate_to_tokens
from nightbatch.emulator.validation import validate_message_params

__all__ = ["Completion", "PreparedRequest", "Usage", "complete", "prepare_request"]


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A validated request, reduced to what processing and rendering need."""

    request: ResponderRequest
    min_cacheable_tokens: int
    shape: PromptShape | None  # dropped once a batch request is processed


@dataclass(frozen=True, slots=True)
class Completion:
    """The reply text and how it ended."""

    text: str
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int  # includes thinking_tokens, as the API bills them
    thinking_tokens: int = 0
    request: ResponderRequest | None = None  # what the reply answered (thinking block, inference_geo)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one response."""

    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int

    @property
    def cache_creation_input_tokens(self) -> int:
        """Both cache-write TTLs together."""
        return self.ephemeral_5m_input_tokens + self.ephemeral_1h_input_tokens

    @classmethod
    def of(cls, plan: CachePlan, output_tokens: int) -> Usage:
        """Usage from a cache plan and the reply's output tokens."""
        return cls(
            plan.input_tokens,
            output_tokens,
            plan.cache_read_input_tokens,
            plan.ephemeral_5m_input_tokens,
            plan.ephemeral_1h_input_tokens,
        )

    def to_json(self, service_tier: str) -> dict[str, Any]:
        """The ``usage`` object with every field of the SDK's ``Usage`` (null where not applicable)."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
            "output_tokens": self.output_tokens,
            "service_tier": service_tier,
            "server_tool_use": None,
            "output_tokens_details": None,
            "inference_geo": None,
            "speed": None,
        }


def prepare_request(
    params: object,
    *,
    in_batch: bool,
    api_version: str | None,
    config: EmulatorConfig,
    intern: dict[str, str] | None = None,
) -> PreparedRequest:
    """Validate ``params`` and reduce them; raises :class:`~nightbatch.emulator.errors.ApiError`."""
    info = validate_message_params(params, in_batch=in_batch, api_version=api_version, catalog_path=config.catalog_path)
    checked = cast(Mapping[str, Any], params)
    shape = analyse_prompt(checked, info.model, ratio=config.tokenizer_ratios.get(info.tokenizer, 1.0))
    request = build_responder_request(
        checked, tier=info.tier, digest=shape.digest, seed=config.seed, intern=intern,
        tokenizer=info.tokenizer, thinks_by_default=info.thinks_by_default,
    )  # fmt: skip
    return PreparedRequest(request, info.min_cacheable_tokens, shape)


def complete(prepared: PreparedRequest, responders: ResponderChain, config: EmulatorConfig) -> Completion:
    """Produce the reply deterministically, then apply ``max_tokens`` and ``stop_sequences``."""
    request = prepared.request
    if request.max_tokens == 0:
        return Completion("", "max_tokens", None, 0, request=request)
    rate = config.quality_error_rates.get(request.tier, 0.0)
    degrade = rate > 0 and unit_interval(config.seed, request.digest, "quality") < rate
    text = responders.pick(request).respond(request, degrade=degrade)
    if request.output_schema is not None:
        text = conform_to_schema(text, request.output_schema)
    # Thinking counts toward max_tokens; the v2 tokenizer family counts the same text ~1.3x.
    thinking = thinking_plan(
        mode=request.thinking_mode, effort=request.effort, budget=request.thinking_budget,
        max_tokens=request.max_tokens, pick=unit_interval(config.seed, request.digest, "thinking"),
    )  # fmt: skip
    ratio = config.tokenizer_ratios.get(request.tokenizer, 1.0)
    room = request.max_tokens - thinking
    stop_reason: str = "end_turn"
    if scale_tokens(text_tokens(text), ratio) > room:
        text = truncate_to_tokens(text, max(0, int(room / ratio)))
        stop_reason = "max_tokens"
    stop_sequence = None
    found = [(text.find(s), s) for s in request.stop_sequences if s in text]
    if found:
        position, stop_sequence = min(found)
        text = text[:position]
        stop_reason = "stop_sequence"
    answer = max(1, min(room, scale_tokens(text_tokens(text), ratio)))
    return Completion(text, stop_reason, stop_sequence, thinking + answer, thinking, request)
