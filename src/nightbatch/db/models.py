"""The database tables: what nightbatch must remember to be exactly-once and auditable.

Every SQLModel table lives in this module and nowhere else. Types are portable (SQLite and PostgreSQL):

* ids and money are 64-bit integers (``BIGINT``; on SQLite ``INTEGER PRIMARY KEY`` so rowids autoincrement);
* status columns are ``VARCHAR`` holding the value of a :class:`enum.StrEnum` (no native PostgreSQL enums,
  so adding a status is a one-line code change, not a migration);
* JSON columns are :class:`sqlalchemy.JSON`; nullable ones store Python ``None`` as SQL ``NULL``;
* timestamps are timezone-aware UTC :class:`~datetime.datetime` in and out, on both databases
  (:class:`UTCDateTime`); naive datetimes are refused.

Money is ``cost_pusd``: an exact integer number of picodollars (1e-12 USD). Every list price in $/MTok with
cent precision, times the batch (0.5) and cache (0.1, 1.25, 2) multipliers, is a whole number of
picodollars per token, so a usage row's cost is exact and no float is ever stored.

Idempotency:

* ``task.idempotency_key`` is unique: enqueueing the same key twice is a no-op.
* ``task (batch_id, custom_id)`` is unique: a result line in a batch maps to exactly one task.
* ``usage_record (task_id, batch_id, purpose)`` is unique. Both databases treat NULLs as distinct, so the
  constraint binds only rows with a task and a batch (re-ingesting a batch's results cannot bill twice);
  rows from synchronous calls (``batch_id`` NULL) or without a task rely on ``response_id`` (the
  provider's message id, unique when given) instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel

__all__ = [
    "CUSTOM_ID_MAX_LENGTH",
    "KEY_MAX_LENGTH",
    "MODEL_MAX_LENGTH",
    "TASK_TYPE_MAX_LENGTH",
    "WORKER_MAX_LENGTH",
    "Batch",
    "BatchStatus",
    "CacheEntry",
    "CacheState",
    "Calibration",
    "Installation",
    "Run",
    "RunStatus",
    "ServiceTier",
    "StrEnumType",
    "Task",
    "TaskAttempt",
    "TaskStatus",
    "UTCDateTime",
    "UsagePurpose",
    "UsageRecord",
    "metadata",
    "utcnow",
]

TASK_TYPE_MAX_LENGTH = 64
KEY_MAX_LENGTH = 200
MODEL_MAX_LENGTH = 100
CUSTOM_ID_MAX_LENGTH = 64  # the Message Batches API's limit
WORKER_MAX_LENGTH = 128

# Deterministic constraint names, so later migrations (and SQLite batch mode) can refer to them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = SQLModel.metadata


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


# -- column types ----------------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones: the value is converted to UTC, stored
    without an offset, and UTC is re-attached on the way out. Naive datetimes are refused rather than
    guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware one, e.g. nightbatch.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnumType(TypeDecorator[StrEnum]):
    """A :class:`StrEnum` stored as its value in a ``VARCHAR`` (not a native enum type)."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[StrEnum], length: int = 16) -> None:
        super().__init__(length)
        self.enum_class = enum_class

    def process_bind_param(self, value: StrEnum | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_class(value).value  # a ValueError names a value that is not a member

    def process_result_value(self, value: str | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum_class(value)


def _id_type() -> TypeEngine[int]:
    # BIGINT everywhere except SQLite, where only "INTEGER PRIMARY KEY" is an autoincrementing rowid alias.
    return BigInteger().with_variant(Integer(), "sqlite")


def _json(nullable: bool = False) -> JSON:
    return JSON(none_as_null=nullable)


# -- enums -----------------------------------------------------------------------------------------


class TaskStatus(StrEnum):
    """Where a task is in its life: ``queued -> claimed -> submitted -> succeeded | failed``."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class BatchStatus(StrEnum):
    """Where a batch is: ``pending`` means our row and manifest exist but the API's create is unconfirmed."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    ENDED = "ended"
    INGESTED = "ingested"
    CREATE_FAILED = "create_failed"
    ORPHANED = "orphaned"


class ServiceTier(StrEnum):
    """How a response was billed: the Batches API (half price) or a synchronous call."""

    BATCH = "batch"
    STANDARD = "standard"


class UsagePurpose(StrEnum):
    """Why a billed request was made."""

    TASK = "task"
    PRIMING = "priming"
    CALIBRATION = "calibration"
    SHADOW = "shadow"
    ORPHAN = "orphan"  # billed by a batch no task pointed at any more (reported; see submit.submitter)
    FALLBACK = "fallback"  # a task sent real-time because its batch would miss the deadline (nightbatch.deadline)


class CacheState(StrEnum):
    """What is known of a prefix group's entry in the provider's batch cache (see ``db.cache_entries``)."""

    PILOT_RUNNING = "pilot_running"  # a one-task pilot batch is writing it; the group's other tasks wait
    WARM = "warm"  # a batch item wrote or read it; alive until ``expires_at`` (a conservative bound)
    COLD = "cold"  # nothing alive known (a pilot that wrote nothing, or an entry past its expiry)


class CacheRole(StrEnum):
    """A batch's part in its prefix group's caching; NULL when its requests carry no breakpoint."""

    PILOT = "pilot"  # one task writing the group's prefix into the batch cache
    FANOUT = "fanout"  # the rest of the group, reading it


class RunStatus(StrEnum):
    """How an orchestrator run ended (``running`` while it has not)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"  # its process died without finishing it (closed by a later run or collect)


# -- tables ----------------------------------------------------------------------------------------


class Run(SQLModel, table=True):
    """One orchestrator run (``nightly``, ``submit``, ``collect``, ``backfill``, ...)."""

    __tablename__ = "run"

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    kind: str = Field(sa_type=String(32), index=True)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_type=_json())
    status: RunStatus = Field(default=RunStatus.RUNNING, sa_type=StrEnumType(RunStatus))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    totals: dict[str, Any] | None = Field(default=None, sa_type=_json(nullable=True))
    # Who runs it, so a later run can tell a live run from one whose process is gone (see nightbatch.runs).
    hostname: str | None = Field(default=None, sa_type=String(255))
    pid: int | None = Field(default=None, sa_type=Integer())
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class Batch(SQLModel, table=True):
    """One Message Batch, from the moment we decide to create it until its results are ingested."""

    __tablename__ = "batch"

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    provider_batch_id: str | None = Field(default=None, sa_type=String(128), unique=True)
    model: str = Field(sa_type=String(MODEL_MAX_LENGTH))
    status: BatchStatus = Field(default=BatchStatus.PENDING, sa_type=StrEnumType(BatchStatus), index=True)
    request_count: int = Field(default=0, sa_type=Integer())
    payload_bytes: int = Field(default=0, sa_type=BigInteger())
    prefix_hash: str | None = Field(default=None, sa_type=String(64))
    cache_ttl: str | None = Field(default=None, sa_type=String(8))
    cache_decision: dict[str, Any] | None = Field(default=None, sa_type=_json(nullable=True))
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
    run_id: int | None = Field(default=None, foreign_key="run.id", sa_type=_id_type(), index=True)
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
    calibration_id: int | None = Field(default=None, foreign_key="calibration.id", sa_type=_id_type(), index=True)


class Task(SQLModel, table=True):
    """One unit of work: a payload of some task type, and everything that happened to it."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_claim", "status", "priority", "id"),
        UniqueConstraint("batch_id", "custom_id", name="uq_task_batch_id_custom_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    task_type: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH), index=True)
    payload: dict[str, Any] = Field(sa_type=_json())
    idempotency_key: str = Field(sa_type=String(KEY_MAX_LENGTH), unique=True)
    status: TaskStatus = Field(default=TaskStatus.QUEUED, sa_type=StrEnumType(TaskStatus))
    attempts: int = Field(default=0, sa_type=Integer())
    # Claims that never led to a sent request (see nightbatch.queue.claim: the poison rule).
    claims: int = Field(default=0, sa_type=Integer(), sa_column_kwargs={"server_default": "0"})
    model: str | None = Field(default=None, sa_type=String(MODEL_MAX_LENGTH))
    model_override: str | None = Field(default=None, sa_type=String(MODEL_MAX_LENGTH))
    batch_id: int | None = Field(default=None, foreign_key="batch.id", sa_type=_id_type(), index=True)
    custom_id: str | None = Field(default=None, sa_type=String(CUSTOM_ID_MAX_LENGTH), index=True)
    error_type: str | None = Field(default=None, sa_type=String(64))
    error_message: str | None = Field(default=None, sa_type=Text())
    output_uri: str | None = Field(default=None, sa_type=Text())
    output_line: int | None = Field(default=None, sa_type=Integer())
    output_inline: Any | None = Field(default=None, sa_type=_json(nullable=True))
    priority: int = Field(default=0, sa_type=Integer())
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime())
    claimed_by: str | None = Field(default=None, sa_type=String(WORKER_MAX_LENGTH))
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    source: str | None = Field(default=None, sa_type=Text())
    user_canceled: bool = Field(default=False)
    route_model: str | None = Field(default=None, sa_type=String(MODEL_MAX_LENGTH))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), sa_column_kwargs={"onupdate": utcnow})


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

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    task_id: int | None = Field(default=None, foreign_key="task.id", sa_type=_id_type(), index=True)
    batch_id: int | None = Field(default=None, foreign_key="batch.id", sa_type=_id_type(), index=True)
    run_id: int | None = Field(default=None, foreign_key="run.id", sa_type=_id_type(), index=True)
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

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    task_id: int = Field(foreign_key="task.id", sa_type=_id_type(), index=True)
    task_type: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH), index=True)
    attempt: int = Field(default=0, sa_type=Integer())
    model: str = Field(sa_type=String(MODEL_MAX_LENGTH))
    purpose: UsagePurpose = Field(default=UsagePurpose.TASK, sa_type=StrEnumType(UsagePurpose))
    batch_id: int | None = Field(default=None, foreign_key="batch.id", sa_type=_id_type(), index=True)
    custom_id: str | None = Field(default=None, sa_type=String(CUSTOM_ID_MAX_LENGTH))
    calibration_id: int | None = Field(default=None, foreign_key="calibration.id", sa_type=_id_type(), index=True)
    result_type: str = Field(sa_type=String(16))
    check_passed: bool | None = Field(default=None)
    check_reason: str | None = Field(default=None, sa_type=Text())
    output: Any | None = Field(default=None, sa_type=_json(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class Installation(SQLModel, table=True):
    """This database's installation id, made once (row ``id = 1``) and carried in every custom_id we send.

    Two installations sharing one API workspace tell their batches apart by it (see
    :mod:`nightbatch.custom_ids` and :mod:`nightbatch.submit.reconcile`).
    """

    __tablename__ = "installation"

    id: int = Field(default=1, primary_key=True, sa_type=Integer())
    installation_id: str = Field(sa_type=String(16))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class Calibration(SQLModel, table=True):
    """One calibration of a task type: the same sample sent to every candidate model, and the verdict.

    ``applied_at`` set means its ``recommended_model`` is the type's route from then on (the latest
    applied calibration of a type wins over its configured model).
    """

    __tablename__ = "calibration"

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    task_type: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH), index=True)
    sample_size: int = Field(default=0, sa_type=Integer())
    models: list[str] = Field(default_factory=list, sa_type=_json())
    threshold: float | None = Field(default=None)
    status: str = Field(default="running", sa_type=String(16))
    results: dict[str, Any] | None = Field(default=None, sa_type=_json(nullable=True))
    recommended_model: str | None = Field(default=None, sa_type=String(MODEL_MAX_LENGTH))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    applied_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class CacheEntry(SQLModel, table=True):
    """One prefix group's entry in the provider's *batch* cache, as far as the results have shown it.

    The database serves one workspace (one API key), and cache entries are per workspace, so the key is
    (model, prefix hash). ``pilot_running`` is the waiting state of the group: its other tasks stay queued
    until the collect side ingests the pilot batch and moves the row to ``warm`` (or ``cold``).
    """

    __tablename__ = "cache_entry"
    __table_args__ = (UniqueConstraint("model", "prefix_hash", name="uq_cache_entry_model_prefix_hash"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    model: str = Field(sa_type=String(MODEL_MAX_LENGTH))
    prefix_hash: str = Field(sa_type=String(64))
    state: CacheState = Field(default=CacheState.COLD, sa_type=StrEnumType(CacheState))
    ttl: str | None = Field(default=None, sa_type=String(8))
    pilot_batch_id: int | None = Field(default=None, foreign_key="batch.id", sa_type=_id_type())
    pilot_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    pilot_failures: int = Field(default=0, sa_type=Integer())
    prefix_tokens: int | None = Field(default=None, sa_type=Integer())
    last_write_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_read_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


# -- multi-stage pipelines, de-duplication and response reuse (issue 18; nightbatch.pipeline) ------------


class TwinKind(StrEnum):
    """How a task was answered without a request of its own."""

    DEDUP = "dedup"  # an identical request of the same submit went out once; this task shares its result
    REUSE = "reuse"  # an identical request answered within the type's ``reuse_responses`` window


class TaskStage(SQLModel, table=True):
    """A task enqueued by a pipeline stage: which upstream task's result made it, and its pipeline item.

    Written in the transaction that records the upstream result; ``(upstream_task_id, stage)`` is unique
    (and so is the task's idempotency key, ``stage:<upstream id>:<stage>``), so a re-ingest or a crash
    never makes a stage task twice. ``root_task_id`` is the first stage's task: the pipeline *item* whose
    cost is every stage's, escalation's and shadow's cost together.
    """

    __tablename__ = "task_stage"
    __table_args__ = (UniqueConstraint("upstream_task_id", "stage", name="uq_task_stage_upstream_task_id_stage"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    task_id: int = Field(foreign_key="task.id", sa_type=_id_type(), unique=True)
    upstream_task_id: int = Field(foreign_key="task.id", sa_type=_id_type(), index=True)
    root_task_id: int = Field(foreign_key="task.id", sa_type=_id_type(), index=True)
    pipeline: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH), index=True)  # the first stage's task type
    stage: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH))  # this task's type
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class TaskTwin(SQLModel, table=True):
    """A task answered by another task's request (no usage row of its own: it cost nothing).

    ``batch_id`` is the batch whose result served it (the leader's); the leader's usage row in that batch
    is what the twin saved.
    """

    __tablename__ = "task_twin"
    __table_args__ = (UniqueConstraint("task_id", "batch_id", name="uq_task_twin_task_id_batch_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    task_id: int = Field(foreign_key="task.id", sa_type=_id_type(), index=True)
    leader_task_id: int = Field(foreign_key="task.id", sa_type=_id_type(), index=True)
    batch_id: int = Field(foreign_key="batch.id", sa_type=_id_type(), index=True)
    kind: TwinKind = Field(sa_type=StrEnumType(TwinKind, 8))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class RequestDigest(SQLModel, table=True):
    """The digest of a request sent for a type with ``reuse_responses``: how a later identical one finds it."""

    __tablename__ = "request_digest"
    __table_args__ = (UniqueConstraint("task_id", "batch_id", name="uq_request_digest_task_id_batch_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_id_type())
    task_id: int = Field(foreign_key="task.id", sa_type=_id_type())
    batch_id: int = Field(foreign_key="batch.id", sa_type=_id_type())
    task_type: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH))
    digest: str = Field(sa_type=String(64), index=True)
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


# The claim's two halves (db.tasks.claim_tasks) each read an index already in claim order, so claiming n tasks
# reads about n index entries instead of sorting every claimable row (1.2 s per claim at a million queued).
# On PostgreSQL an ascending column sorts NULLs last, as the claim asks of the deadline; SQLite sorts them first
# (and has no NULLS LAST in an index), so there the index narrows the rows to the queued ones and the priority
# order, and the deadline is sorted within a priority.
_QUEUED_ONLY = text("status = 'queued'")
Index(
    "ix_task_queued_claim_order",
    Task.__table__.c.priority.desc(),  # type: ignore[attr-defined]
    Task.__table__.c.deadline,  # type: ignore[attr-defined]
    Task.__table__.c.id,  # type: ignore[attr-defined]
    postgresql_where=_QUEUED_ONLY,
    sqlite_where=_QUEUED_ONLY,
)
# Claimed but not yet linked to a batch: the only claimed tasks whose lease can lapse back into the queue. Few at
# any time (what live workers are building), however many tasks sit in sent batches.
_UNSENT_CLAIMS = text("status = 'claimed' AND batch_id IS NULL")
Index(
    "ix_task_unsent_claims",
    Task.__table__.c.claimed_at,  # type: ignore[attr-defined]
    postgresql_where=_UNSENT_CLAIMS,
    sqlite_where=_UNSENT_CLAIMS,
)
