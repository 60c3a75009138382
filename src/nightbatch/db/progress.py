"""Cheap counts the terminal polls while a command runs, to show progress with a rate and an ETA.

Each probe returns ``(done, total, phase)``; ``total`` is None while unknown. They only read, and only
rows created after the command started (``since``), so a concurrent worker's work is not counted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import Batch, BatchStatus, Run, Task, TaskStatus

__all__ = ["Probe", "collect_probe", "enqueue_probe", "queued_tasks", "run_probe", "submit_probe"]

Probe = tuple[int, int | None, str]


def queued_tasks(engine: Engine, task_types: list[str] | None = None) -> int:
    query = select(func.count()).where(col(Task.status) == TaskStatus.QUEUED)
    if task_types:
        query = query.where(col(Task.task_type).in_(task_types))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def enqueue_probe(engine: Engine, since: datetime, total: int | None) -> Probe:
    with engine.connect() as conn:
        done = int(conn.execute(select(func.count()).where(col(Task.created_at) >= since)).scalar_one())
    return done, total, "enqueueing"


def submit_probe(engine: Engine, since: datetime, total: int | None) -> Probe:
    """Requests in batches created since ``since`` against the tasks that were queued."""
    with engine.connect() as conn:
        sent, batches = conn.execute(
            select(func.coalesce(func.sum(col(Batch.request_count)), 0), func.count()).where(
                col(Batch.created_at) >= since, col(Batch.purpose) == "task"
            )
        ).one()
    return int(sent), total, f"submitting ({int(batches):,} batches)"


def run_probe(engine: Engine, since: datetime) -> Probe:
    """Requests the API finished in the batches of the newest run started since ``since``."""
    with engine.connect() as conn:
        run_id = conn.execute(
            select(col(Run.id)).where(col(Run.started_at) >= since).order_by(col(Run.id).desc()).limit(1)
        ).scalar()
        if run_id is None:
            return 0, None, "starting"
        rows = conn.execute(
            select(col(Batch.status), col(Batch.request_count), col(Batch.processing_count)).where(
                col(Batch.run_id) == run_id
            )
        ).all()
    if not rows:
        return 0, None, f"run {run_id}: submitting"
    total = sum(r[1] for r in rows)
    done = sum(r[1] - r[2] for r in rows if r[0] != BatchStatus.PENDING)
    waiting = sum(r[0] in (BatchStatus.PENDING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELING) for r in rows)
    phase = f"run {run_id}: {waiting:,} of {len(rows):,} batches processing" if waiting else f"run {run_id}: ingesting"
    return done, total, phase


def collect_probe(engine: Engine, since: datetime, total: int | None) -> Probe:
    """Batches ingested since ``since`` against those open or ended when the command started."""
    with engine.connect() as conn:
        done = int(conn.execute(select(func.count()).where(col(Batch.ingested_at) >= since)).scalar_one())
    return done, total, "collecting batches"
