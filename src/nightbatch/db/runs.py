"""Run rows: started, heartbeating, finished, or closed as interrupted (see :mod:`nightbatch.runs` for
when a run counts as gone; this module only writes and reads the rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlmodel import Session, col

from nightbatch.db.models import Run, RunStatus, utcnow

__all__ = [
    "RunningRun",
    "close_interrupted",
    "finish_run",
    "heartbeat",
    "interrupted_before",
    "running_runs",
    "start_run",
]


@dataclass(frozen=True)
class RunningRun:
    """A ``running`` run as the closer sees it: who runs it and when it last showed life."""

    id: int
    kind: str
    hostname: str | None
    pid: int | None
    heartbeat_at: datetime | None
    started_at: datetime


def start_run(engine: Engine, kind: str, parameters: dict[str, Any], *, hostname: str, pid: int) -> int:
    """A new ``running`` run row, its heartbeat now; its id."""
    with Session(engine) as session:
        run = Run(kind=kind, parameters=parameters, hostname=hostname, pid=pid, heartbeat_at=utcnow())
        session.add(run)
        session.commit()
        assert run.id is not None
        return run.id


def heartbeat(engine: Engine, run_id: int) -> None:
    """The run's process is alive: called at step boundaries (each submit and collect round)."""
    with engine.begin() as conn:
        conn.execute(
            update(Run).where(col(Run.id) == run_id, col(Run.status) == RunStatus.RUNNING).values(heartbeat_at=utcnow())
        )


def finish_run(engine: Engine, run_id: int, status: RunStatus, totals: dict[str, Any]) -> None:
    """End the run with ``status`` and its ``totals`` (also a run a collect judges after the fact)."""
    with Session(engine) as session:
        session.execute(
            update(Run).where(col(Run.id) == run_id).values(status=status, ended_at=utcnow(), totals=totals)
        )
        session.commit()


def running_runs(engine: Engine) -> list[RunningRun]:
    """Every run still marked ``running``."""
    columns = (col(Run.id), col(Run.kind), col(Run.hostname), col(Run.pid), col(Run.heartbeat_at), col(Run.started_at))
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).where(col(Run.status) == RunStatus.RUNNING)).all()
    return [RunningRun(int(r.id), str(r.kind), r.hostname, r.pid, r.heartbeat_at, r.started_at) for r in rows]


def close_interrupted(engine: Engine, run_id: int, reason: str, *, now: datetime) -> bool:
    """Mark a ``running`` run ``interrupted`` (compare-and-set: two closers close it once); True if this did."""
    with engine.begin() as conn:
        done = conn.execute(
            update(Run)
            .where(col(Run.id) == run_id, col(Run.status) == RunStatus.RUNNING)
            .values(status=RunStatus.INTERRUPTED, ended_at=now, totals={"interrupted": reason})
        )
    return bool(done.rowcount)


def interrupted_before(engine: Engine, run_id: int) -> list[int]:
    """The interrupted runs started just before ``run_id`` (after the last run that was not interrupted).

    Their ledger rows keep their own run ids while later runs collect and finish their work; a report of
    ``run_id`` includes them.
    """
    with engine.connect() as conn:
        started = conn.execute(select(col(Run.started_at)).where(col(Run.id) == run_id)).scalar_one_or_none()
        if started is None:
            return []
        earlier = conn.execute(
            select(col(Run.id), col(Run.status))
            .where((col(Run.started_at) < started) | ((col(Run.started_at) == started) & (col(Run.id) < run_id)))
            .order_by(col(Run.started_at).desc(), col(Run.id).desc())
        )
        found: list[int] = []
        for other_id, status in earlier:
            if status != RunStatus.INTERRUPTED:
                break
            found.append(int(other_id))
    return sorted(found)
