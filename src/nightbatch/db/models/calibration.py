"""The calibration table: which model a task type's sample showed to be the cheapest that meets its bar."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlmodel import Field, SQLModel

from nightbatch.db.models.columns import MODEL_MAX_LENGTH, TASK_TYPE_MAX_LENGTH, UTCDateTime, id_type, json_type, utcnow

__all__ = ["Calibration"]


class Calibration(SQLModel, table=True):
    """One calibration of a task type: the same sample sent to every candidate model, and the verdict.

    ``applied_at`` set means its ``recommended_model`` is the type's route from then on (the latest
    applied calibration of a type wins over its configured model).
    """

    __tablename__ = "calibration"

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    task_type: str = Field(sa_type=String(TASK_TYPE_MAX_LENGTH), index=True)
    sample_size: int = Field(default=0, sa_type=Integer())
    models: list[str] = Field(default_factory=list, sa_type=json_type())
    threshold: float | None = Field(default=None)
    status: str = Field(default="running", sa_type=String(16))
    results: dict[str, Any] | None = Field(default=None, sa_type=json_type(nullable=True))
    recommended_model: str | None = Field(default=None, sa_type=String(MODEL_MAX_LENGTH))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    applied_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
