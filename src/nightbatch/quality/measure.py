"""Pass rates and shadow agreement per (task type, model), from the recorded attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, case, func, select
from sqlmodel import col

from nightbatch.db.models import TaskAttempt, UsagePurpose
from nightbatch.quality.checks import agrees
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["PassRate", "ShadowDrift", "pass_rates", "shadow_drift"]


@dataclass(frozen=True)
class PassRate:
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
class ShadowDrift:
    """How the routed model compares with its shadow (the next rung up) on the same tasks."""

    task_type: str
    routed_model: str
    shadow_model: str
    pairs: int
    agreement: float
    routed_pass_rate: float
    threshold: float | None

    @property
    def drifted(self) -> bool:
        return self.threshold is not None and min(self.agreement, self.routed_pass_rate) < self.threshold


def shadow_drift(engine: Engine, registry: TaskTypeRegistry, *, since: datetime | None = None) -> list[ShadowDrift]:
    """Agreement between routed and shadow outputs per type; flagged when below the type's threshold."""
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
    routed: dict[int, tuple[str, str, bool | None, object]] = {}
    shadows: dict[int, tuple[str, object]] = {}
    with engine.connect() as conn:
        for task_id, task_type, model, purpose, passed, output in conn.execute(query):
            if purpose == UsagePurpose.SHADOW:
                shadows[task_id] = (model, output)
            else:
                routed[task_id] = (task_type, model, passed, output)
    groups: dict[tuple[str, str, str], list[tuple[bool, bool]]] = {}
    for task_id, (shadow_model, shadow_output) in shadows.items():
        if task_id not in routed:
            continue
        task_type, model, passed, output = routed[task_id]
        groups.setdefault((task_type, model, shadow_model), []).append((agrees(output, shadow_output), bool(passed)))
    drifts = []
    for (task_type, model, shadow_model), pairs in sorted(groups.items()):
        threshold = registry.get(task_type).routing.threshold if task_type in registry else None
        drifts.append(
            ShadowDrift(
                task_type=task_type,
                routed_model=model,
                shadow_model=shadow_model,
                pairs=len(pairs),
                agreement=sum(a for a, _ in pairs) / len(pairs),
                routed_pass_rate=sum(p for _, p in pairs) / len(pairs),
                threshold=threshold,
            )
        )
    return drifts
