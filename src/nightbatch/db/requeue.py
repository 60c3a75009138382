"""Putting finished-but-unsuccessful tasks back in the queue (``nightbatch requeue``).

Only tasks at rest can be re-queued: ``failed`` and ``canceled``. A claimed or submitted task is in
somebody's hands (or at the provider) and a succeeded one is done; re-queueing those could send a task
twice. The update is one compare-and-set statement per chunk of ids, guarded by the state it was
selected in, so a run is idempotent: a second run finds nothing left to do. A re-queued task starts with
a fresh attempt budget (``attempts`` and ``claims`` back to 0); its last ``error_type`` and message stay
as history until it is tried again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Engine, Table, func, select, update

from nightbatch.db.models import TaskStatus, metadata, utcnow
from nightbatch.errors import InputError

__all__ = ["REQUEUEABLE", "RequeueResult", "requeue_tasks"]

REQUEUEABLE = (TaskStatus.FAILED, TaskStatus.CANCELED)
_TASK: Table = metadata.tables["task"]


@dataclass(frozen=True)
class RequeueResult:
    matched: int
    requeued: int
    by_type: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False


def requeue_tasks(
    engine: Engine,
    *,
    task_types: Collection[str] = (),
    states: Collection[str] = (TaskStatus.FAILED,),
    error_types: Collection[str] = (),
    dry_run: bool = False,
) -> RequeueResult:
    """Re-queue the tasks in ``states`` (failed by default) matching the filters; ``dry_run`` only counts."""
    wanted = []
    for state in states or (TaskStatus.FAILED,):
        try:
            status = TaskStatus(state)
        except ValueError:
            raise InputError(f"unknown task state {state!r}: use {' or '.join(REQUEUEABLE)}") from None
        if status not in REQUEUEABLE:
            raise InputError(
                f"tasks in state {status.value!r} cannot be re-queued (only {' and '.join(REQUEUEABLE)}): "
                "they are in flight or done"
            )
        wanted.append(status.value)
    conditions: list[ColumnElement[bool]] = [_TASK.c.status.in_(wanted)]
    if task_types:
        conditions.append(_TASK.c.task_type.in_(sorted(task_types)))
    if error_types:
        conditions.append(_TASK.c.error_type.in_(sorted(error_types)))
    with engine.begin() as conn:
        counts = Counter(
            {
                str(t): int(n)
                for t, n in conn.execute(
                    select(_TASK.c.task_type, func.count()).where(*conditions).group_by(_TASK.c.task_type)
                )
            }
        )
        matched = sum(counts.values())
        if dry_run or not matched:
            return RequeueResult(matched, 0, dict(sorted(counts.items())), dry_run)
        result = conn.execute(
            update(_TASK)
            .where(*conditions)
            .values(
                status=TaskStatus.QUEUED,
                attempts=0,
                claims=0,
                user_canceled=False,
                batch_id=None,
                custom_id=None,
                claimed_by=None,
                claimed_at=None,
                updated_at=utcnow(),
            )
        )
    return RequeueResult(matched, int(result.rowcount), dict(sorted(counts.items())), dry_run)
