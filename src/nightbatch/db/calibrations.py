"""Reading calibrations: a calibration's verdict, the decided calibrations, and the routes they set.

Calibrations themselves are run by the calibration stage; this module only reads their rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import col

from nightbatch.db.models import Calibration

__all__ = ["DecidedCalibration", "calibrated_routes", "calibration_verdict", "decided_calibrations"]


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
