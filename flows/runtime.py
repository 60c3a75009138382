"""Building the core's :class:`Services` inside a flow run, and keeping the run's row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from nightbatch.config import Settings
from nightbatch.db.models import RunStatus
from nightbatch.runs import finish_run, start_run
from nightbatch.services import Services


def services_for(base_url: str | None) -> Services:
    return Services.from_settings(Settings(), base_url=base_url)


@dataclass
class TrackedRun:
    services: Services
    run_id: int
    totals: dict[str, Any] = field(default_factory=dict)


@contextmanager
def tracked_run(kind: str, params: BaseModel, base_url: str | None) -> Iterator[TrackedRun]:
    """Services for one flow run and its ``run`` row: succeeded with its totals, or failed if the body raised."""
    services = services_for(base_url)
    run = TrackedRun(services, start_run(services.engine, kind, params.model_dump(mode="json")))
    status = RunStatus.FAILED
    try:
        yield run
        status = RunStatus.SUCCEEDED
    finally:
        finish_run(services.engine, run.run_id, status, run.totals)
        services.close()
