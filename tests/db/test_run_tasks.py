"""Read-only views of a run's batches (nightbatch.db.run_tasks): each batch's role, as the progress table shows it."""

from __future__ import annotations

from sqlalchemy import Engine, update
from sqlmodel import Session, col

from nightbatch.db.models import Batch, BatchStatus, CacheRole, Task, TaskAttempt, UsagePurpose
from nightbatch.db.run_tasks import batch_progress, batch_role
from nightbatch.queue.enqueue import enqueue


def test_a_batch_role_says_what_the_batch_is_for() -> None:
    assert batch_role("task", "pilot", shadow=False) == "pilot"
    assert batch_role("task", "fanout", shadow=False) == "fan-out"
    assert batch_role("task", None, shadow=False) == "uncached"
    assert batch_role("task", "pilot", shadow=True) == "shadow pilot"
    assert batch_role("task", None, shadow=True) == "shadow uncached"
    assert batch_role("calibration", None, shadow=False) == "calibration"
    assert batch_role("orphan", None, shadow=False) == "orphan"


def test_batch_progress_reads_each_batch_role_from_its_row(engine: Engine) -> None:
    shapes: list[tuple[UsagePurpose, CacheRole | None, bool]] = [
        (UsagePurpose.TASK, CacheRole.PILOT, True),
        (UsagePurpose.TASK, CacheRole.FANOUT, True),
        (UsagePurpose.TASK, None, True),
        (UsagePurpose.TASK, CacheRole.FANOUT, False),  # no task points at it: a batch of shadow requests
        (UsagePurpose.CALIBRATION, None, False),
    ]
    with Session(engine) as session:
        rows = [Batch(model="claude-x", status=BatchStatus.IN_PROGRESS, request_count=1, purpose=purpose,
                      cache_role=role) for purpose, role, _ in shapes]  # fmt: skip
        session.add_all(rows)
        session.commit()
        ids = [int(b.id or 0) for b in rows]
    for batch_id, (_, _, has_task) in zip(ids, shapes, strict=True):
        if has_task:
            task_id = enqueue(engine, "date_extraction", {"text": f"task of batch {batch_id}"}).task_id
            with engine.begin() as conn:
                conn.execute(update(Task).where(col(Task.id) == task_id).values(batch_id=batch_id))
    progress = batch_progress(engine)
    assert [(r.task_type, r.role) for r in progress] == [
        ("date_extraction", "pilot"),
        ("date_extraction", "fan-out"),
        ("date_extraction", "uncached"),
        ("(shadow requests)", "shadow fan-out"),
        ("(calibration)", "calibration"),
    ]


def test_a_routine_batch_whose_tasks_moved_on_is_not_called_shadow(engine: Engine) -> None:
    """Tasks leave an ended batch (expired, escalated) and a failed create (back to the queue): no task points at
    either any more, yet neither is a batch of shadow requests. The attempts its results left name the type."""
    with Session(engine) as session:
        ended = Batch(model="claude-x", status=BatchStatus.INGESTED, request_count=1, cache_role=CacheRole.FANOUT)
        unsent = Batch(model="claude-x", status=BatchStatus.CREATE_FAILED, request_count=1)
        shadow = Batch(model="claude-x", status=BatchStatus.INGESTED, request_count=1)
        session.add_all([ended, unsent, shadow])
        session.commit()
        task_id = enqueue(engine, "date_extraction", {"text": "expired, then retried elsewhere"}).task_id
        session.add_all([
            TaskAttempt(task_id=task_id, task_type="date_extraction", model="claude-x", batch_id=ended.id,
                        custom_id="a", result_type="expired"),
            TaskAttempt(task_id=task_id, task_type="date_extraction", model="claude-y", batch_id=shadow.id,
                        custom_id="b", result_type="succeeded", purpose=UsagePurpose.SHADOW),
        ])  # fmt: skip
        session.commit()
    assert [(r.task_type, r.role) for r in batch_progress(engine)] == [
        ("date_extraction", "fan-out"),
        ("(not sent)", "uncached"),
        ("(shadow requests)", "shadow uncached"),
    ]
