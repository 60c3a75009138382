"""The ledger's tables: every billed response (``usage_record``) and every result of every attempt (``task_attempt``).

Money is ``cost_pusd``: an exact integer number of picodollars (1e-12 USD). Every list price in $/MTok with
cent precision, times the batch (0.5) and cache (0.1, 1.25, 2) multipliers, is a whole number of
picodollars per token, so a usage row's cost is exact and no float is ever stored.

Idempotency: ``usage_record (task_id, batch_id, purpose)`` is unique. Both databases treat NULLs as distinct,
so the constraint binds only rows with a task and a batch (re-ingesting a batch's results cannot bill twice);
rows from synchronous calls (``batch_id`` NULL) or without a task rely on ``response_id`` (the provider's
message id, unique when given) instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from nightbatch.db.models.columns import (
    CUSTOM_ID_MAX_LENGTH,
    MODEL_MAX_LENGTH,
    TASK_TYPE_MAX_LENGTH,
    StrEnumType,
    UTCDateTime,
    id_type,
    json_type,
    utcnow,
)
from nightbatch.db.models.enums import ServiceTier, UsagePurpose

__all__ = ["TaskAttempt", "UsageRecord"]


class UsageRecord(SQLModel, table=True):
    """One billed API response, with its exact cost in picodollars (1e-12 USD).

    ``task_id`` is NULL for requests that serve no single task (cache priming, calibration).
    ``cost_pusd`` is NULL when the response's model has no price row (an **unpriced** response: billed by
    the provider, never booked as $0; reports count and name them). ``thinking_tokens`` is the part of
    ``output_tokens`` the model spent thinking (billed as output; 0 when it did not think).
    ``inference_geo`` is where the response says it ran (``"us"``: priced 1.1x). ``billed_at`` is when it
    was billed (a batch result: its batch's ``ended_at``): the price row in force then is the one used.
    """

    __tablename__ = "usage_record"
    __table_args__ = (UniqueConstraint("task_id", "batch_id", "purpose", name="uq_usage_record_task_batch_purpose"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    task_id: int | None = Field(default=None, foreign_key="task.id", sa_type=id_type(), index=True)
    batch_id: int | None = Field(default=None, foreign_key="batch.id", sa_type=id_type(), index=True)
    run_id: int | None = Field(default=None, foreign_key="run.id", sa_type=id_type(), index=True)
    response_id: str | None = Field(default=None, sa_type=String(128), unique=True)
    model: str = Field(sa_type=String(MODEL_MAX_LENGTH))
    service_tier: ServiceTier = Field(sa_type=StrEnumType(ServiceTier))
    input_tokens: int = Field(default=0, sa_type=Integer())
    output_tokens: int = Field(default=0, sa_type=Integer())
    cache_write_5m_tokens: int = Field(default=0, sa_type=Integer())
    cache_write_1h_tokens: int = Field(default=0, sa_type=Integer())
    cache_read_tokens: int = Field(default=0, sa_type=Integer())
    price_version: str = Field(sa_type=String(64))
    cost_pusd: int | None = Field(default=None, sa_type=BigInteger())
    purpose: UsagePurpose = Field(default=UsagePurpose.TASK, sa_type=StrEnumType(UsagePurpose))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    thinking_tokens: int = Field(default=0, sa_type=Integer(), sa_column_kwargs={"server_default": "0"})
    inference_geo: str | None = Field(default=None, sa_type=String(16))
    billed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class TaskAttempt(SQLModel, table=True):
    """One result for one task from one model: a routine attempt, a shadow request, or a calibration probe.

    Kept for every attempt, so pass rates per (task type, model) can be queried and a failed task shows
    every rung it went through.
    """

    __tablename__ = "task_attempt"
    __table_args__ = (UniqueConstraint("batch_id", "custom_id", name="uq_task_attempt_batch_id_custom_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    task_id: int = Field(foreign_key="task.id", sa_type=id_type(), index=True)
    task_type: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH), index=True)
    attempt: int = Field(default=0, sa_type=Integer())
    model: str = Field(sa_type=String(MODEL_MAX_LENGTH))
    purpose: UsagePurpose = Field(default=UsagePurpose.TASK, sa_type=StrEnumType(UsagePurpose))
    batch_id: int | None = Field(default=None, foreign_key="batch.id", sa_type=id_type(), index=True)
    custom_id: str | None = Field(default=None, sa_type=String(CUSTOM_ID_MAX_LENGTH))
    calibration_id: int | None = Field(default=None, foreign_key="calibration.id", sa_type=id_type(), index=True)
    result_type: str = Field(sa_type=String(16))
    check_passed: bool | None = Field(default=None)
    check_reason: str | None = Field(default=None, sa_type=Text())
    output: Any | None = Field(default=None, sa_type=json_type(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


# The deadline fallback's answers, found by pipeline stages at each submit (db.stages): a partial index, so the
# ingest hot path (every other usage row) pays nothing for it.
_FALLBACK_ONLY = text("purpose = 'fallback'")
Index(
    "ix_usage_record_fallback_created_at",
    UsageRecord.__table__.c.created_at,  # type: ignore[attr-defined]
    postgresql_where=_FALLBACK_ONLY,
    sqlite_where=_FALLBACK_ONLY,
)
