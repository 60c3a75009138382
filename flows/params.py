"""Flow parameters as pydantic models: Prefect renders them as forms in the UI and validates them."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field


class ApiParams(BaseModel):
    """Where the API is; leave empty to use ANTHROPIC_BASE_URL / the real API."""

    base_url: str | None = Field(None, description="Override the API address (e.g. the local emulator).")


class SubmitParams(ApiParams):
    task_types: list[str] | None = Field(None, description="Only these task types (default: all).")
    limit: int = Field(100_000, ge=1, description="At most this many tasks per run.")
    expected_batch_minutes: float = Field(60.0, gt=0, description="Expected processing time, for the TTL choice.")
    budget_usd: Decimal | None = Field(None, ge=0, description="Hard cap on this run's forecast spend.")


class CollectParams(ApiParams):
    pass


class NightlyParams(SubmitParams):
    source: str | None = Field(None, description="Enqueue first from this JSONL file, folder or s3:// prefix.")
    source_task_type: str | None = Field(None, description="Task type for source lines that name none.")
    deadline_minutes: float = Field(24 * 60, gt=0, description="Stop waiting for batches after this long.")
    poll_seconds: float = Field(60.0, gt=0, description="Longest pause between polls (backoff starts lower).")
