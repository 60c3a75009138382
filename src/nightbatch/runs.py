"""Run bookkeeping: one ``run`` row per orchestrator run, so reports can be per night."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col

from nightbatch.db.models import Run, RunStatus, utcnow

__all__ = ["finish_run", "start_run"]


def start_run(engine: Engine, kind: str, parameters: dict[str, Any]) -> int:
    with Session(engine) as session:
        run = Run(kind=kind, parameters=parameters)
        session.add(run)
        session.commit()
        assert run.id is not None
        return run.id


def finish_run(engine: Engine, run_id: int, status: RunStatus, totals: dict[str, Any]) -> None:
    with Session(engine) as session:
        session.execute(
            update(Run).where(col(Run.id) == run_id).values(status=status, ended_at=utcnow(), totals=totals)
        )
        session.commit()
