"""Run bookkeeping: one ``run`` row per orchestrator run, so reports can be per night.

A run records who runs it (``hostname``, ``pid``) and a ``heartbeat_at`` its process refreshes at every
step boundary. A process killed outright (SIGKILL, OOM, a lost node) cannot mark its run ended, so the
next run, and every collect, closes such runs as ``interrupted`` (:func:`close_interrupted_runs`):

* on the same host, a run whose process no longer exists is gone at once (``kill(pid, 0)``): this is
  exact and needs no waiting;
* on any host, a run whose heartbeat is older than ``stale_after`` (twice the lease by default) is
  gone: another host's process table cannot be read, and a live run heartbeats far more often. A pid
  reused by an unrelated process on the same host is caught by this rule too.

The work an interrupted run sent out is finished by later runs (its batches are collected, its
re-queued tasks claimed again), but its ledger rows keep its ``run_id``. So a run's report covers the
interrupted runs just before it (:func:`interrupted_before`), and says so.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nightbatch.config import Settings
from nightbatch.db import Engine
from nightbatch.db.models import utcnow
from nightbatch.db.runs import RunningRun, close_interrupted, finish_run, heartbeat, interrupted_before, running_runs
from nightbatch.db.runs import start_run as insert_run

__all__ = [
    "ClosedRun",
    "close_interrupted_runs",
    "finish_run",
    "heartbeat",
    "interrupted_before",
    "stale_after",
    "start_run",
]


def stale_after(settings: Settings) -> timedelta:
    """A run silent this long is gone, whatever its host: twice the lease (a live run beats every round)."""
    return timedelta(seconds=2 * settings.lease_seconds)


def _host() -> str:
    return socket.gethostname()[:255]


def start_run(engine: Engine, kind: str, parameters: dict[str, Any]) -> int:
    """A ``running`` row for this process (host and pid, so a later run can tell whether it is gone)."""
    return insert_run(engine, kind, parameters, hostname=_host(), pid=os.getpid())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@dataclass(frozen=True)
class ClosedRun:
    run_id: int
    kind: str
    reason: str

    def describe(self) -> str:
        return f"run {self.run_id} ({self.kind}) closed as interrupted: {self.reason}"


def _why_gone(row: RunningRun, host: str, stale_before: datetime) -> str | None:
    last = row.heartbeat_at or row.started_at
    if row.hostname == host and row.pid is not None and not _pid_alive(row.pid):
        return f"its process {row.pid} on {host} is gone"
    if last < stale_before:
        return f"no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC (process {row.pid} on {row.hostname})"
    return None


def close_interrupted_runs(
    engine: Engine, *, stale_after: timedelta, now: datetime | None = None, exclude: int | None = None
) -> list[ClosedRun]:
    """Mark ``running`` runs whose process is gone as ``interrupted`` (see the module docstring).

    Compare-and-set on ``status = running``: two workers closing the same run close it once.
    """
    now = now or utcnow()
    host = _host()
    closed: list[ClosedRun] = []
    for row in running_runs(engine):
        if row.id == exclude:
            continue
        reason = _why_gone(row, host, now - stale_after)
        if reason is not None and close_interrupted(engine, row.id, reason, now=now):
            closed.append(ClosedRun(row.id, row.kind, reason))
    return closed
