"""What the report reads of pipelines, de-duplication and reuse (:mod:`nightbatch.report.pipelines`).

The pipelines' tasks with their items (:class:`~nightbatch.db.models.TaskStage`), what each task cost in a
selection, the shadow pairs of upstream types, and what twins saved (:class:`~nightbatch.db.models.TaskTwin`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, select

from nightbatch.db.models import Task, TaskAttempt, TaskStage, TaskTwin, TwinKind, UsagePurpose, UsageRecord

__all__ = ["PipelineTask", "dedup_leaders", "pipeline_tasks", "shadow_pairs", "task_costs", "twin_savings"]

_TASK: Table = Task.__table__  # type: ignore[attr-defined]
_STAGE: Table = TaskStage.__table__  # type: ignore[attr-defined]
_TWIN: Table = TaskTwin.__table__  # type: ignore[attr-defined]
_CHUNK = 500


@dataclass(frozen=True)
class PipelineTask:
    """A task of a pipeline: its type, status, pipeline item (root task) and its upstream task (None at stage 1)."""

    task_id: int
    task_type: str
    status: str
    root_task_id: int
    upstream_task_id: int | None


def pipeline_tasks(conn: Connection, first_stages: Sequence[str]) -> list[PipelineTask]:
    """Every task of a first-stage type in ``first_stages`` and every stage task: the pipelines' items and parts."""
    if not first_stages:
        return []
    rows = conn.execute(
        select(_TASK.c.id, _TASK.c.task_type, _TASK.c.status, _STAGE.c.root_task_id, _STAGE.c.upstream_task_id)
        .select_from(_TASK.outerjoin(_STAGE, _STAGE.c.task_id == _TASK.c.id))
        .where(_TASK.c.task_type.in_(list(first_stages)) | _STAGE.c.id.is_not(None))
    ).all()
    return [
        PipelineTask(int(i), str(t), str(s), int(root if root is not None else i), None if up is None else int(up))
        for i, t, s, root, up in rows
    ]


def task_costs(conn: Connection, task_ids: Iterable[int], usage_filter: Sequence[Any]) -> dict[int, tuple[int, int]]:
    """Per task: (picodollars of its priced usage rows, its unpriced rows), all purposes, within ``usage_filter``."""
    ids = sorted(set(task_ids))
    usage = UsageRecord.__table__  # type: ignore[attr-defined]
    found: dict[int, tuple[int, int]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(
            select(
                usage.c.task_id,
                func.coalesce(func.sum(usage.c.cost_pusd), 0),
                func.count(),
                func.count(usage.c.cost_pusd),
            )
            .where(usage.c.task_id.in_(ids[start : start + _CHUNK]), *usage_filter)
            .group_by(usage.c.task_id)
        ).all()
        for task_id, cost, count, priced in rows:
            found[int(task_id)] = (int(cost), int(count) - int(priced))
    return found


def shadow_pairs(conn: Connection, task_types: Sequence[str]) -> list[tuple[int, str, Any, Any]]:
    """(task id, task type, routed output, shadow output) of every shadowed, succeeded task of ``task_types``."""
    if not task_types:
        return []
    attempt = TaskAttempt.__table__  # type: ignore[attr-defined]
    rows = conn.execute(
        select(attempt.c.task_id, attempt.c.task_type, attempt.c.purpose, attempt.c.check_passed, attempt.c.output)
        .where(
            attempt.c.task_type.in_(list(task_types)),
            attempt.c.result_type == "succeeded",
            attempt.c.purpose.in_([UsagePurpose.TASK.value, UsagePurpose.SHADOW.value]),
        )
        .order_by(attempt.c.id)
    ).all()
    routed: dict[int, tuple[str, Any]] = {}
    shadows: dict[int, Any] = {}
    for task_id, task_type, purpose, passed, output in rows:
        if purpose == UsagePurpose.SHADOW.value:
            shadows[int(task_id)] = output
        elif passed:  # the output the task succeeded with (the last passing attempt): what its stages were built on
            routed[int(task_id)] = (str(task_type), output)
    return [(t, routed[t][0], routed[t][1], s) for t, s in shadows.items() if t in routed]


def twin_savings(conn: Connection, since: datetime | None, until: datetime | None) -> dict[str, tuple[int, int]]:
    """Per kind (``dedup``, ``reuse``): (twins made in [since, until), picodollars their leaders' requests cost).

    What a twin saved is what its leader's own request cost (the usage row of the leader in the batch that
    answered both): the twin would have paid the same.
    """
    usage = UsageRecord.__table__  # type: ignore[attr-defined]
    joined = _TWIN.outerjoin(
        usage,
        (usage.c.task_id == _TWIN.c.leader_task_id)
        & (usage.c.batch_id == _TWIN.c.batch_id)
        & (usage.c.purpose == UsagePurpose.TASK.value),
    )
    query = select(_TWIN.c.kind, func.count(), func.coalesce(func.sum(usage.c.cost_pusd), 0)).select_from(joined)
    if since is not None:
        query = query.where(_TWIN.c.created_at >= since)
    if until is not None:
        query = query.where(_TWIN.c.created_at < until)
    return {str(kind): (int(n), int(cost)) for kind, n, cost in conn.execute(query.group_by(_TWIN.c.kind)).all()}


def dedup_leaders(conn: Connection) -> dict[int, int]:
    """Every de-duplicated twin's leader (twin task id -> leader task id)."""
    rows = conn.execute(select(_TWIN.c.task_id, _TWIN.c.leader_task_id).where(_TWIN.c.kind == TwinKind.DEDUP.value))
    return {int(twin): int(leader) for twin, leader in rows.all()}
