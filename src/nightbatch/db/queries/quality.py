"""What the recorded attempts (``task_attempt``) say about quality: checks passed, shadow pairs, escalations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, case, func, select
from sqlmodel import col

from nightbatch.db.models import TaskAttempt, UsagePurpose, UsageRecord
from nightbatch.db.queries._sql import usage_of
from nightbatch.db.queries.selection import Selection
from nightbatch.pricing import Usage

__all__ = [
    "EscalationAttempt",
    "PassRate",
    "ShadowAttempt",
    "escalation_attempts",
    "pass_rates",
    "shadow_attempts",
]


@dataclass(frozen=True)
class PassRate:
    """Checked and passed attempts of one (task type, model, purpose)."""

    task_type: str
    model: str
    purpose: str
    checked: int
    passed: int

    @property
    def rate(self) -> float | None:
        return self.passed / self.checked if self.checked else None


def pass_rates(engine: Engine, *, since: datetime | None = None) -> list[PassRate]:
    """Checked and passed attempts per (task type, model, purpose); only results that were checked count."""
    query = (
        select(
            col(TaskAttempt.task_type),
            col(TaskAttempt.model),
            col(TaskAttempt.purpose),
            func.count(),
            func.sum(case((col(TaskAttempt.check_passed).is_(True), 1), else_=0)),
        )
        .where(col(TaskAttempt.check_passed).is_not(None))
        .group_by(col(TaskAttempt.task_type), col(TaskAttempt.model), col(TaskAttempt.purpose))
    )
    if since is not None:
        query = query.where(col(TaskAttempt.created_at) >= since)
    with engine.connect() as conn:
        return [PassRate(t, m, str(p), int(n), int(ok or 0)) for t, m, p, n, ok in conn.execute(query)]


@dataclass(frozen=True)
class ShadowAttempt:
    """One succeeded attempt of a task on its routed model (``shadow`` False) or on its shadow model."""

    task_id: int
    task_type: str
    model: str
    shadow: bool
    check_passed: bool | None
    output: object


def shadow_attempts(engine: Engine, *, since: datetime | None = None) -> list[ShadowAttempt]:
    """Every succeeded task and shadow attempt (since ``since``), in the database's order."""
    query = select(
        col(TaskAttempt.task_id),
        col(TaskAttempt.task_type),
        col(TaskAttempt.model),
        col(TaskAttempt.purpose),
        col(TaskAttempt.check_passed),
        col(TaskAttempt.output),
    ).where(col(TaskAttempt.result_type) == "succeeded", col(TaskAttempt.purpose).in_(["task", "shadow"]))
    if since is not None:
        query = query.where(col(TaskAttempt.created_at) >= since)
    with engine.connect() as conn:
        return [
            ShadowAttempt(int(task_id), task_type, model, purpose == UsagePurpose.SHADOW, passed, output)
            for task_id, task_type, model, purpose, passed, output in conn.execute(query)
        ]


@dataclass(frozen=True)
class EscalationAttempt:
    """One task attempt billed in the selection: its check verdict and the usage and cost it was billed."""

    task_id: int
    task_type: str
    check_passed: bool | None
    model: str
    cost_pusd: int | None
    usage: Usage


def escalation_attempts(engine: Engine, selection: Selection) -> list[EscalationAttempt]:
    """The selection's task attempts joined to their billed usage, by task and then in the order they were made."""
    query = (
        select(
            col(TaskAttempt.task_id),
            col(TaskAttempt.task_type),
            col(TaskAttempt.check_passed),
            col(UsageRecord.model),
            col(UsageRecord.cost_pusd),
            col(UsageRecord.input_tokens),
            col(UsageRecord.output_tokens),
            col(UsageRecord.cache_write_5m_tokens),
            col(UsageRecord.cache_write_1h_tokens),
            col(UsageRecord.cache_read_tokens),
        )
        .join(
            UsageRecord,
            and_(
                col(UsageRecord.task_id) == col(TaskAttempt.task_id),
                col(UsageRecord.batch_id) == col(TaskAttempt.batch_id),
                col(UsageRecord.purpose) == UsagePurpose.TASK,
            ),
        )
        .where(col(TaskAttempt.purpose) == UsagePurpose.TASK, *selection.usage_filter())
        .order_by(col(TaskAttempt.task_id), col(TaskAttempt.id))
    )
    with engine.connect() as conn:
        return [
            EscalationAttempt(int(r.task_id), r.task_type, r.check_passed, r.model, r.cost_pusd, usage_of(r[5:10]))
            for r in conn.execute(query)
        ]
