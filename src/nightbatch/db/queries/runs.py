"""When runs started: what a report of one run, or of the latest run, needs to name it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, exists, select
from sqlmodel import col

from nightbatch.db.models import Run, UsageRecord

__all__ = ["RunStart", "latest_run", "run_started_at"]


@dataclass(frozen=True)
class RunStart:
    """A run and when it started."""

    run_id: int
    started_at: datetime


def run_started_at(engine: Engine, run_id: int) -> datetime | None:
    """When run ``run_id`` started; None when there is no such run."""
    with engine.connect() as conn:
        return conn.execute(select(col(Run.started_at)).where(col(Run.id) == run_id)).scalar_one_or_none()


def latest_run(engine: Engine) -> RunStart | None:
    """The latest run that billed anything, else the latest run; None when there are no runs."""
    billed = exists().where(col(UsageRecord.run_id) == col(Run.id))
    latest = select(col(Run.id), col(Run.started_at)).order_by(col(Run.started_at).desc(), col(Run.id).desc())
    with engine.connect() as conn:
        row = conn.execute(latest.where(billed).limit(1)).first() or conn.execute(latest.limit(1)).first()
    return None if row is None else RunStart(int(row[0]), row[1])
