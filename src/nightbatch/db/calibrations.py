"""Calibration rows: created, read back with their probes' results and costs, decided, applied; and the
task payloads a calibration samples and scores against.

The calibration stage (:mod:`nightbatch.calibrate`) makes the decisions; reports read verdicts and routes here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine, func, select, update
from sqlmodel import Session, col

from nightbatch.db.models import Batch, Calibration, Task, TaskAttempt, UsagePurpose, UsageRecord

__all__ = [
    "DecidedCalibration",
    "ProbeResult",
    "calibrated_routes",
    "calibration_verdict",
    "create_calibration",
    "decide_calibration",
    "decided_calibrations",
    "first_tasks_of_type",
    "load_calibration",
    "mark_calibration_applied",
    "payloads_of_type",
    "probe_costs_pusd",
    "probe_results",
]


def calibration_verdict(engine: Engine, calibration_id: int) -> tuple[str | None, float | None, bool]:
    """``(recommended model, the bar it had to reach, applied?)`` of a decided calibration."""
    with engine.connect() as conn:
        row = conn.execute(
            select(col(Calibration.recommended_model), col(Calibration.threshold), col(Calibration.applied_at)).where(
                col(Calibration.id) == calibration_id
            )
        ).one()
    return row[0], row[1], row[2] is not None


def calibrated_routes(engine: Engine) -> dict[str, str]:
    """``{task type: model}`` from the latest applied calibration of each type."""
    query = (
        select(col(Calibration.task_type), col(Calibration.recommended_model))
        .where(col(Calibration.applied_at).is_not(None), col(Calibration.recommended_model).is_not(None))
        .order_by(col(Calibration.applied_at), col(Calibration.id))
    )
    with engine.connect() as conn:
        return {str(task_type): str(model) for task_type, model in conn.execute(query).all()}


@dataclass(frozen=True)
class DecidedCalibration:
    """A decided calibration: what it recommended against which bar, when, and whether it was applied."""

    id: int
    task_type: str
    recommended_model: str | None
    threshold: float | None
    decided_at: datetime | None
    applied_at: datetime | None
    results: dict[str, Any] | None


def decided_calibrations(engine: Engine) -> list[DecidedCalibration]:
    """Every decided calibration, oldest first."""
    query = (
        select(
            col(Calibration.id),
            col(Calibration.task_type),
            col(Calibration.recommended_model),
            col(Calibration.threshold),
            col(Calibration.decided_at),
            col(Calibration.applied_at),
            col(Calibration.results),
        )
        .where(col(Calibration.status) == "decided")
        .order_by(col(Calibration.id))
    )
    with engine.connect() as conn:
        return [DecidedCalibration(int(r[0]), *r[1:]) for r in conn.execute(query).all()]


# Running a calibration's rows (nightbatch.calibrate).


class ProbeResult(NamedTuple):
    """One recorded calibration probe: a task's result from one candidate model."""

    task_id: int
    model: str
    result_type: str
    check_passed: bool | None
    output: Any


def create_calibration(engine: Engine, *, task_type: str, sample_size: int, models: list[str],
                       threshold: float | None) -> int:  # fmt: skip
    """A new ``running`` calibration; returns its id."""
    with Session(engine) as session:
        calibration = Calibration(task_type=task_type, sample_size=sample_size, models=models, threshold=threshold)
        session.add(calibration)
        session.commit()
        assert calibration.id is not None
        return calibration.id


def load_calibration(engine: Engine, calibration_id: int) -> Calibration | None:
    """The calibration row as it is now (a detached snapshot), or None."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Calibration, calibration_id)


def probe_results(engine: Engine, calibration_id: int) -> list[ProbeResult]:
    """Every probe result ingest recorded for the calibration (its ``task_attempt`` rows)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                col(TaskAttempt.task_id),
                col(TaskAttempt.model),
                col(TaskAttempt.result_type),
                col(TaskAttempt.check_passed),
                col(TaskAttempt.output),
            )
            .where(col(TaskAttempt.calibration_id) == calibration_id)
            .order_by(col(TaskAttempt.id))
        ).all()
    return [ProbeResult(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


def probe_costs_pusd(engine: Engine, calibration_id: int) -> dict[str, int]:
    """What the calibration's probes cost, by the model their ledger rows are booked under (unpriced: 0)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(UsageRecord.model), func.coalesce(func.sum(col(UsageRecord.cost_pusd)), 0))
            .join(Batch, col(Batch.id) == col(UsageRecord.batch_id))
            .where(col(Batch.calibration_id) == calibration_id, col(UsageRecord.purpose) == UsagePurpose.CALIBRATION)
            .group_by(col(UsageRecord.model))
        ).all()
    return {model: int(cost) for model, cost in rows}


def decide_calibration(engine: Engine, calibration_id: int, *, results: dict[str, Any], recommended: str | None,
                       now: datetime) -> None:  # fmt: skip
    """``running -> decided``: the scores and the recommendation (None: no candidate reached the bar)."""
    with engine.begin() as conn:
        conn.execute(
            update(Calibration)
            .where(col(Calibration.id) == calibration_id)
            .values(status="decided", results=results, recommended_model=recommended, decided_at=now)
        )


def mark_calibration_applied(engine: Engine, calibration_id: int, now: datetime) -> None:
    """The calibration's recommendation becomes its task type's route (the latest applied one wins)."""
    with engine.begin() as conn:
        conn.execute(update(Calibration).where(col(Calibration.id) == calibration_id).values(applied_at=now))


# A calibration's samples: tasks of its type, read whatever their status.


def first_tasks_of_type(engine: Engine, task_type: str, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """``(id, payload)`` of the first ``limit`` tasks of a type (lowest ids, any status): a calibration's sample."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.id), col(Task.payload))
            .where(col(Task.task_type) == task_type)
            .order_by(col(Task.id))
            .limit(limit)
        ).all()
    return [(int(r[0]), r[1]) for r in rows]


def payloads_of_type(engine: Engine, task_type: str) -> dict[int, dict[str, Any]]:
    """Every task's payload of a type, by task id."""
    with engine.connect() as conn:
        rows = conn.execute(select(col(Task.id), col(Task.payload)).where(col(Task.task_type) == task_type))
        return {int(task_id): payload for task_id, payload in rows}
