"""Exactly-once audit of a worked-off queue, in aggregate statements that stay cheap at a million tasks.

After several workers have worked a queue off, nothing may have been claimed, sent, billed or ingested
twice. What the database alone can show is counted here (the benchmark adds the object store's manifests
and shards and the provider's own ledger, :mod:`benchmarks.backfill`):

* every task ended (none ``queued``, ``claimed`` or ``submitted``) and no claim is left held;
* no task was sent more often than its attempts allow, and none billed more often than it was sent
  (``usage_record`` rows of purpose ``task`` per task against ``task.attempts``);
* no result ingested twice (``task_attempt`` rows per task, attempt and purpose);
* every routine batch ingested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, exists, func, select, text
from sqlmodel import col

from nightbatch.db.engine import dialect_name
from nightbatch.db.models import Batch, BatchStatus, Task, TaskAttempt, TaskStatus, UsageRecord

__all__ = ["QueueAudit", "audit_queue", "database_bytes", "tasks_queued", "work_left"]

_OPEN = (TaskStatus.QUEUED, TaskStatus.CLAIMED, TaskStatus.SUBMITTED)
_OPEN_BATCH = (BatchStatus.PENDING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELING, BatchStatus.ENDED)


@dataclass(frozen=True)
class QueueAudit:
    """Counts of what a finished backfill left behind; :attr:`problems` must be empty."""

    tasks_by_status: dict[str, int]
    batches_by_status: dict[str, int]
    claims_held: int
    sends: int  # sum of task.attempts
    sent_more_than_once: int
    billed_task_rows: int
    billed_more_than_sent: int
    attempt_rows: int
    ingested_twice: int
    routine_batches_not_ingested: int
    problems: list[str] = field(default_factory=list)


def work_left(engine: Engine) -> bool:
    """Whether any task is still to end or any batch still open (one indexed look each)."""
    with engine.connect() as conn:
        tasks = conn.execute(select(exists().where(col(Task.status).in_(_OPEN)))).scalar_one()
        batches = conn.execute(select(exists().where(col(Batch.status).in_(_OPEN_BATCH)))).scalar_one()
    return bool(tasks or batches)


def tasks_queued(engine: Engine) -> bool:
    """Whether any task waits in the queue (one indexed look, where counting would scan them all)."""
    with engine.connect() as conn:
        return bool(conn.execute(select(exists().where(col(Task.status) == TaskStatus.QUEUED))).scalar_one())


def audit_queue(engine: Engine, *, max_sends: int = 1) -> QueueAudit:
    """Count what must not have happened twice; ``max_sends``: how often a task may have been sent."""
    billed = (
        select(col(UsageRecord.task_id), func.count().label("n"))
        .where(col(UsageRecord.purpose) == "task", col(UsageRecord.task_id).is_not(None))
        .group_by(col(UsageRecord.task_id))
        .subquery()
    )
    twice = (
        select(col(TaskAttempt.task_id))
        .group_by(col(TaskAttempt.task_id), col(TaskAttempt.attempt), col(TaskAttempt.purpose))
        .having(func.count() > 1)
        .subquery()
    )
    with engine.connect() as conn:
        tasks = {
            str(s): int(n) for s, n in conn.execute(select(col(Task.status), func.count()).group_by(col(Task.status)))
        }
        batches = {
            str(s): int(n) for s, n in conn.execute(select(col(Batch.status), func.count()).group_by(col(Batch.status)))
        }
        held = conn.execute(select(func.count()).where(col(Task.claimed_by).is_not(None))).scalar_one()
        sends = conn.execute(select(func.coalesce(func.sum(col(Task.attempts)), 0))).scalar_one()
        resent = conn.execute(select(func.count()).where(col(Task.attempts) > max_sends)).scalar_one()
        billed_rows = conn.execute(select(func.coalesce(func.sum(billed.c.n), 0))).scalar_one()
        over_billed = conn.execute(
            select(func.count()).select_from(billed.join(Task, col(Task.id) == billed.c.task_id))
            .where(billed.c.n > col(Task.attempts))
        ).scalar_one()  # fmt: skip
        attempts = conn.execute(select(func.count()).select_from(TaskAttempt)).scalar_one()
        ingested_twice = conn.execute(select(func.count()).select_from(twice)).scalar_one()
        not_ingested = conn.execute(
            select(func.count()).where(col(Batch.purpose) == "task", col(Batch.status) != BatchStatus.INGESTED)
        ).scalar_one()
    audit = QueueAudit(tasks, batches, int(held), int(sends), int(resent), int(billed_rows), int(over_billed),
                       int(attempts), int(ingested_twice), int(not_ingested))  # fmt: skip
    still_open = sum(tasks.get(str(s), 0) for s in _OPEN)
    for count, what in (
        (still_open, "task(s) never ended (queued, claimed or submitted)"),
        (audit.claims_held, "claim(s) still held"),
        (audit.sent_more_than_once, f"task(s) sent more than {max_sends} time(s)"),
        (audit.billed_more_than_sent, "task(s) billed more often than sent"),
        (audit.ingested_twice, "result(s) ingested twice"),
        (audit.routine_batches_not_ingested, "routine batch(es) not ingested"),
    ):
        if count:
            audit.problems.append(f"{count:,} {what}")
    return audit


def database_bytes(engine: Engine) -> int:
    """The database's size on disk (PostgreSQL: ``pg_database_size``; SQLite: pages x page size)."""
    with engine.connect() as conn:
        if dialect_name(engine) == "postgresql":
            return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        pages = conn.execute(text("PRAGMA page_count")).scalar_one()
        size = conn.execute(text("PRAGMA page_size")).scalar_one()
        return int(pages) * int(size)
