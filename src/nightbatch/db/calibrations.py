"""Reading a calibration's verdict (the calibration itself is run by :mod:`nightbatch.quality.calibrate`)."""

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
