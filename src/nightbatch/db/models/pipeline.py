"""The pipeline tables (issue 18; nightbatch.pipeline): stage tasks, de-duplication and response reuse.

``task_stage`` links a stage task to the result that made it, ``task_twin`` records a task answered by another
task's request, and ``request_digest`` is how a later identical request finds an earlier answer.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlmodel import Field, SQLModel

from nightbatch.db.models.columns import TASK_TYPE_MAX_LENGTH, StrEnumType, UTCDateTime, id_type, utcnow
from nightbatch.db.models.enums import TwinKind

__all__ = ["RequestDigest", "TaskStage", "TaskTwin"]


class TaskStage(SQLModel, table=True):
    """A task enqueued by a pipeline stage: which upstream task's result made it, and its pipeline item.

    Written in the transaction that records the upstream result; ``(upstream_task_id, stage)`` is unique
    (and so is the task's idempotency key, ``stage:<upstream id>:<stage>``), so a re-ingest or a crash
    never makes a stage task twice. ``root_task_id`` is the first stage's task: the pipeline *item* whose
    cost is every stage's, escalation's and shadow's cost together.
    """

    __tablename__ = "task_stage"
    __table_args__ = (UniqueConstraint("upstream_task_id", "stage", name="uq_task_stage_upstream_task_id_stage"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    task_id: int = Field(foreign_key="task.id", sa_type=id_type(), unique=True)
    upstream_task_id: int = Field(foreign_key="task.id", sa_type=id_type(), index=True)
    root_task_id: int = Field(foreign_key="task.id", sa_type=id_type(), index=True)
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

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    task_id: int = Field(foreign_key="task.id", sa_type=id_type(), index=True)
    leader_task_id: int = Field(foreign_key="task.id", sa_type=id_type(), index=True)
    batch_id: int = Field(foreign_key="batch.id", sa_type=id_type(), index=True)
    kind: TwinKind = Field(sa_type=StrEnumType(TwinKind, 8))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class RequestDigest(SQLModel, table=True):
    """The digest of a request sent for a type with ``reuse_responses``: how a later identical one finds it."""

    __tablename__ = "request_digest"
    __table_args__ = (UniqueConstraint("task_id", "batch_id", name="uq_request_digest_task_id_batch_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    task_id: int = Field(foreign_key="task.id", sa_type=id_type())
    batch_id: int = Field(foreign_key="batch.id", sa_type=id_type())
    task_type: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH))
    digest: str = Field(sa_type=String(64), index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
