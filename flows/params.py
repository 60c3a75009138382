"""Flow parameters as pydantic models: Prefect renders them as forms in the UI and validates them.

The same name means the same thing in every flow: ``task_type`` is always *which task types to work on*
(default: every type configured on the worker); ``source_task_type`` is the type of source lines that
name none; ``wait`` says whether a flow waits for its batches or hands them to the ``collect`` deployment.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field, field_validator


class ApiParams(BaseModel):
    """Where the API is; leave empty to use ANTHROPIC_BASE_URL / the real API."""

    base_url: str | None = Field(None, description="Override the API address (e.g. the local emulator).")


class SubmitParams(ApiParams):
    task_type: list[str] | None = Field(None, description="Only these task types (default: all configured).")
    limit: int = Field(100_000, ge=1, description="At most this many tasks per run.")
    expected_batch_minutes: float = Field(60.0, gt=0, description="Expected processing time, for the TTL choice.")
    budget_usd: Decimal | None = Field(None, ge=0, description="Hard cap on this run's forecast spend.")

    @field_validator("task_type", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        # "ticket_triage" and ["ticket_triage"] mean the same (the CLI and the UI form both give either).
        return [value] if isinstance(value, str) else value


class CollectParams(ApiParams):
    pass


class WaitParams(SubmitParams):
    source: str | None = Field(None, description="Enqueue first from this JSONL file, folder or s3:// prefix.")
    source_task_type: str | None = Field(None, description="Task type for source lines that name none.")
    deadline_minutes: float = Field(24 * 60, gt=0, description="Stop waiting for batches after this long.")
    poll_seconds: float = Field(60.0, gt=0, description="Longest pause between polls (backoff starts lower).")


class NightlyParams(WaitParams):
    wait: bool = Field(
        False,
        description="Wait for the batches (and re-submit retryable tasks) until done or the deadline; "
        "off: submit and leave the waiting to the scheduled collect deployment.",
    )
