"""Routes decided by measurement: the model each type's latest applied calibration chose."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlmodel import col

from nightbatch.db.models import Calibration

__all__ = ["calibrated_routes"]


def calibrated_routes(engine: Engine) -> dict[str, str]:
    """``{task type: model}`` from the latest applied calibration of each type."""
    query = (
        select(col(Calibration.task_type), col(Calibration.recommended_model))
        .where(col(Calibration.applied_at).is_not(None), col(Calibration.recommended_model).is_not(None))
        .order_by(col(Calibration.applied_at), col(Calibration.id))
    )
    with engine.connect() as conn:
        return {str(task_type): str(model) for task_type, model in conn.execute(query).all()}
