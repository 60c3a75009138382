"""Settings of the local Anthropic API emulator (one pydantic model, passed down once).

Every knob that changes observable behaviour lives here so a test, the demo or a benchmark can say
exactly which "provider" it measured against. Defaults are chosen to resemble the real service
(limits, TTLs, retention) while keeping a default batch quick enough to watch finish in real time.
Fields marked *unverified* model behaviour the public docs do not pin down.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EmulatorConfig"]

_DAY = 86_400.0


class EmulatorConfig(BaseModel):
    """How the emulator behaves. Immutable; derive variants with ``model_copy(update=...)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="Seeds ids, responders, result order and probabilistic faults.")

    # Simulated clock: now = start + real_elapsed * time_scale + manual_offset.
    time_scale: float = Field(1.0, ge=0.0, description="Simulated seconds per real second (3600: an hour a second).")
    start_time: datetime | None = Field(None, description="Simulated clock origin; None = the wall clock at start.")

    # Batch processing model (throughput = batch_concurrency / wave_seconds requests per simulated second).
    batch_concurrency: int = Field(16, ge=1, description="Requests of one batch processed together in a wave.")
    wave_seconds: float = Field(2.0, ge=0.0, description="Simulated seconds one wave takes.")
    batch_start_delay_seconds: float = Field(5.0, ge=0.0, description="Queueing delay before the first wave.")
    cancel_delay_seconds: float = Field(2.0, ge=0.0, description="How long a batch stays `canceling`.")
    batch_expiry_seconds: float = Field(
        _DAY, gt=0.0, description="Unfinished requests expire this long after creation."
    )
    results_retention_seconds: float = Field(29 * _DAY, gt=0.0, description="`archived_at` = created_at + this.")

    # Limits of the real API.
    max_batch_requests: int = Field(100_000, ge=1)
    max_batch_bytes: int = Field(256 * 1024 * 1024, ge=1, description="Larger batch bodies get 413 request_too_large.")
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1, description="Limit for /v1/messages and count_tokens.")
    max_queued_batch_requests: int | None = Field(
        None, ge=1, description="Cap on unprocessed batch requests per workspace; over it create gets 429 (unverified)."
    )

    # Authentication and headers.
    api_keys: list[str] | None = Field(None, description="Accepted keys; None accepts any non-empty key.")
    require_version_header: bool = Field(True, description="Reject requests without `anthropic-version` like the API.")

    # Models and responses.
    catalog_path: Path | None = Field(None, description="Model catalog TOML; None = the packaged one.")
    quality_error_rates: dict[int, float] = Field(
        default_factory=dict, description="Per model tier, probability a task responder answers wrongly."
    )
    tokenizer_ratios: dict[str, float] = Field(
        default_factory=lambda: {"legacy": 1.0, "v2": 1.3},
        description="Tokens per catalog tokenizer family relative to the legacy formula (v2 ~1.3x: ANTHROPIC_API.md).",
    )
    reply_min_tokens: int = Field(40, ge=1, description="Shortest natural length of a default reply.")
    reply_max_tokens: int = Field(400, ge=1, description="Longest natural length of a default reply.")

    # Prompt cache model.
    cache_lookback_blocks: int = Field(20, ge=1, description="Blocks checked before each breakpoint for a hit.")
    batch_cache_model: Literal["isolated", "waves"] = Field(
        "isolated",
        description=(
            "'isolated' (as documented and measured): batch and real-time entries live apart and a batch's items "
            "never read each other's writes, only those of earlier batches. 'waves' (legacy, for experiments): "
            "one shared cache, later waves of a batch read its first wave's writes."
        ),
    )
    batch_cache_hit_probability: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Chance a batch item reads a live entry at all (best effort; 0.3 = the docs' lower bound).",
    )

    # Housekeeping.
    results_chunk_lines: int = Field(500, ge=1, description="Result lines rendered per streamed chunk.")
    request_log_size: int = Field(10_000, ge=0, description="How many recent requests the admin log keeps.")
    persist_path: Path | None = Field(None, description="Pickle state here so an emulator restart keeps it.")
    persist_interval_seconds: float = Field(1.0, ge=0.0, description="Minimum real seconds between state saves.")
