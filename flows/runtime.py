"""Building the core's :class:`Services` inside a flow run, and keeping the run's row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from nightbatch.config import Settings
from nightbatch.db.models import RunStatus
from nightbatch.runs import close_interrupted_runs, finish_run, stale_after, start_run
from nightbatch.services import Services


def services_for(base_url: str | None) -> Services:
    return Services.from_settings(Settings(), base_url=base_url)


@dataclass
class TrackedRun:
    services: Services
    run_id: int
    totals: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # for the run's artifacts (e.g. interrupted runs closed)


@contextmanager
def tracked_run(kind: str, params: BaseModel, base_url: str | None) -> Iterator[TrackedRun]:
    """Services for one flow run and its ``run`` row: succeeded with its totals, or failed if the body raised.

    Runs whose process died are closed as interrupted first; this run's report and artifacts include them.
    """
    services = services_for(base_url)
    closed = close_interrupted_runs(services.engine, stale_after=stale_after(services.settings))
    run = TrackedRun(services, start_run(services.engine, kind, params.model_dump(mode="json")))
    run.notes = [f"{c.describe()}; this run finished its work and reports it" for c in closed]
    status = RunStatus.FAILED
    try:
        yield run
        status = RunStatus.SUCCEEDED
    finally:
        finish_run(services.engine, run.run_id, status, run.totals)
        services.close()
