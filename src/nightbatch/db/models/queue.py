"""The queue's tables: orchestrator runs, the batches they send, and the tasks those batches carry.

Idempotency:

* ``task.idempotency_key`` is unique: enqueueing the same key twice is a no-op.
* ``task (batch_id, custom_id)`` is unique: a result line in a batch maps to exactly one task.

The claim (``db.task_claims.claim_tasks``) reads two partial indexes of ``task``, declared after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from nightbatch.db.models.columns import (
    CUSTOM_ID_MAX_LENGTH,
    KEY_MAX_LENGTH,
    MODEL_MAX_LENGTH,
    TASK_TYPE_MAX_LENGTH,
    WORKER_MAX_LENGTH,
    StrEnumType,
    UTCDateTime,
    id_type,
    json_type,
    utcnow,
)
from nightbatch.db.models.enums import BatchStatus, CacheRole, RunStatus, TaskStatus, UsagePurpose

__all__ = ["Batch", "Run", "Task"]


class Run(SQLModel, table=True):
    """One orchestrator run (``nightly``, ``submit``, ``collect``, ``backfill``, ...)."""

    __tablename__ = "run"

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    kind: str = Field(sa_type=String(32), index=True)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())
    status: RunStatus = Field(default=RunStatus.RUNNING, sa_type=StrEnumType(RunStatus))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    totals: dict[str, Any] | None = Field(default=None, sa_type=json_type(nullable=True))
    # Who runs it, so a later run can tell a live run from one whose process is gone (see nightbatch.runs).
    hostname: str | None = Field(default=None, sa_type=String(255))
    pid: int | None = Field(default=None, sa_type=Integer())
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class Batch(SQLModel, table=True):
    """One Message Batch, from the moment we decide to create it until its results are ingested."""

    __tablename__ = "batch"

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    provider_batch_id: str | None = Field(default=None, sa_type=String(128), unique=True)
    model: str = Field(sa_type=String(MODEL_MAX_LENGTH))
    status: BatchStatus = Field(default=BatchStatus.PENDING, sa_type=StrEnumType(BatchStatus), index=True)
    request_count: int = Field(default=0, sa_type=Integer())
    payload_bytes: int = Field(default=0, sa_type=BigInteger())
    prefix_hash: str | None = Field(default=None, sa_type=String(64))
    cache_ttl: str | None = Field(default=None, sa_type=String(8))
    cache_decision: dict[str, Any] | None = Field(default=None, sa_type=json_type(nullable=True))
    processing_count: int = Field(default=0, sa_type=Integer())
    succeeded_count: int = Field(default=0, sa_type=Integer())
    errored_count: int = Field(default=0, sa_type=Integer())
    canceled_count: int = Field(default=0, sa_type=Integer())
    expired_count: int = Field(default=0, sa_type=Integer())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    ingested_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    manifest_uri: str | None = Field(default=None, sa_type=Text())
    results_uri: str | None = Field(default=None, sa_type=Text())
    run_id: int | None = Field(default=None, foreign_key="run.id", sa_type=id_type(), index=True)
    claimed_by: str | None = Field(default=None, sa_type=String(WORKER_MAX_LENGTH))
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    error: str | None = Field(default=None, sa_type=Text())
    # ``task`` (the queue's work, shadows included), ``calibration`` or ``orphan`` (adopted by the reconciler).
    purpose: UsagePurpose = Field(
        default=UsagePurpose.TASK,
        sa_type=StrEnumType(UsagePurpose),
        index=True,
        sa_column_kwargs={"server_default": "task"},
    )
    cache_role: CacheRole | None = Field(default=None, sa_type=StrEnumType(CacheRole))
    # The calibration a ``purpose = calibration`` batch was sent for (NULL for every other purpose).
    calibration_id: int | None = Field(default=None, foreign_key="calibration.id", sa_type=id_type(), index=True)


class Task(SQLModel, table=True):
    """One unit of work: a payload of some task type, and everything that happened to it."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_claim", "status", "priority", "id"),
        UniqueConstraint("batch_id", "custom_id", name="uq_task_batch_id_custom_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    task_type: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH), index=True)
    payload: dict[str, Any] = Field(sa_type=json_type())
    idempotency_key: str = Field(sa_type=String(KEY_MAX_LENGTH), unique=True)
    status: TaskStatus = Field(default=TaskStatus.QUEUED, sa_type=StrEnumType(TaskStatus))
    attempts: int = Field(default=0, sa_type=Integer())
    # Claims that never led to a sent request (see nightbatch.queue.claim: the poison rule).
    claims: int = Field(default=0, sa_type=Integer(), sa_column_kwargs={"server_default": "0"})
    model: str | None = Field(default=None, sa_type=String(MODEL_MAX_LENGTH))
    model_override: str | None = Field(default=None, sa_type=String(MODEL_MAX_LENGTH))
    batch_id: int | None = Field(default=None, foreign_key="batch.id", sa_type=id_type(), index=True)
    custom_id: str | None = Field(default=None, sa_type=String(CUSTOM_ID_MAX_LENGTH), index=True)
    error_type: str | None = Field(default=None, sa_type=String(64))
    error_message: str | None = Field(default=None, sa_type=Text())
    output_uri: str | None = Field(default=None, sa_type=Text())
    output_line: int | None = Field(default=None, sa_type=Integer())
    output_inline: Any | None = Field(default=None, sa_type=json_type(nullable=True))
    priority: int = Field(default=0, sa_type=Integer())
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime())
    claimed_by: str | None = Field(default=None, sa_type=String(WORKER_MAX_LENGTH))
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    source: str | None = Field(default=None, sa_type=Text())
    user_canceled: bool = Field(default=False)
    route_model: str | None = Field(default=None, sa_type=String(MODEL_MAX_LENGTH))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), sa_column_kwargs={"onupdate": utcnow})


# The claim (db.task_claims.claim_tasks) reads the queued tasks from this index, already in claim order, so
# claiming n tasks reads about n index entries instead of sorting every queued row (1.2-1.4 s per claim at a
# million queued). ``status`` leads, though the index holds one status, so that SQLite's planner prefers it to
# ix_task_claim (status, ...) even without statistics. "No deadline last" is the expression ``deadline IS NULL``
# rather than NULLS LAST: SQLite has no NULLS LAST in an index, and the same expression orders both alike.
_QUEUED_ONLY = text("status = 'queued'")
Index(
    "ix_task_queued_claim_order",
    Task.__table__.c.status,  # type: ignore[attr-defined]
    Task.__table__.c.priority.desc(),  # type: ignore[attr-defined]
    Task.__table__.c.deadline.is_(None),  # type: ignore[attr-defined]
    Task.__table__.c.deadline,  # type: ignore[attr-defined]
    Task.__table__.c.id,  # type: ignore[attr-defined]
    postgresql_where=_QUEUED_ONLY,
    sqlite_where=_QUEUED_ONLY,
)
# Claimed but not yet linked to a batch: the only claimed tasks whose lease can lapse back into the queue. Few at
# any time (what live workers are building), so the claim's other half finds them here and sorts them.
_UNSENT_CLAIMS = text("status = 'claimed' AND batch_id IS NULL")
Index(
    "ix_task_unsent_claims",
    Task.__table__.c.status,  # type: ignore[attr-defined]
    Task.__table__.c.claimed_at,  # type: ignore[attr-defined]
    postgresql_where=_UNSENT_CLAIMS,
    sqlite_where=_UNSENT_CLAIMS,
)
