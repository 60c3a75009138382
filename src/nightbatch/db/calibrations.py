"""Reading a calibration's verdict (the calibration itself is run by :mod:`nightbatch.calibrate`)."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlmodel import col

from nightbatch.db.models import Calibration

__all__ = ["calibration_verdict"]


def calibration_verdict(engine: Engine, calibration_id: int) -> tuple[str | None, float | None, bool]:
    """``(recommended model, the bar it had to reach, applied?)`` of a decided calibration."""
    with engine.connect() as conn:
        row = conn.execute(
            select(col(Calibration.recommended_model), col(Calibration.threshold), col(Calibration.applied_at)).where(
                col(Calibration.id) == calibration_id
            )
        ).one()
    return row[0], row[1], row[2] is not None


# --- from i17-ingest ---
from datetime import datetime  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

from sqlalchemy import func, update  # noqa: E402
from sqlmodel import Session  # noqa: E402

from nightbatch.db.models import Batch, TaskAttempt, UsagePurpose, UsageRecord  # noqa: E402


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
