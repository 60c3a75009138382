"""Building the core's :class:`Services` inside a flow run, keeping the run's row, and ending it honestly.

Settings reach a flow run in one of two ways, each read once, at flow start. ``nightbatch run | submit |
collect`` read them once and pass :meth:`~nightbatch.config.Settings.public_values` as the flow's
``settings`` parameter; a deployment run (a Prefect worker) gets none and reads its own environment. The
parameter holds no secret, because Prefect shows a flow run's parameters in its UI and stores them in its
database: the API key and the database password are resolved here, in the process that runs the flow
(:meth:`~nightbatch.config.Settings.with_secrets`), or from the Prefect blocks the settings name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prefect import State, get_run_logger
from prefect.states import Completed, Failed
from pydantic import BaseModel

from flows import events
from flows.artifacts import publish_run_artifacts
from flows.blocks import apply_blocks
from flows.names import name_flow_run_after
from nightbatch.config import Settings
from nightbatch.db.models import RunStatus
from nightbatch.errors import RunFailedError
from nightbatch.run_facts import JudgedRun, RunLog, judge_run
from nightbatch.runs import close_interrupted_runs, finish_run, stale_after, start_run
from nightbatch.services import Services

FlowSettings = dict[str, Any]
"""The ``settings`` parameter of every flow: :meth:`Settings.public_values` (no secrets), or None."""


def settings_for(public: FlowSettings | None) -> Settings:
    """The flow run's settings: the values it was given with this process's secrets, or (a deployment run,
    given none) this process's own settings; then any Prefect blocks they name."""
    settings = Settings() if public is None else Settings.with_secrets(public)
    return apply_blocks(settings)


def services_for(base_url: str | None, settings: FlowSettings | None = None) -> Services:
    """The core's services for a flow run (see :func:`settings_for`)."""
    return Services.from_settings(settings_for(settings), base_url=base_url)


@dataclass
class TrackedRun:
    services: Services
    run_id: int
    kind: str
    log: RunLog = field(default_factory=RunLog)
    totals: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


@contextmanager
def tracked_run(
    kind: str, params: BaseModel, base_url: str | None, settings: FlowSettings | None = None
) -> Iterator[TrackedRun]:
    """Services for one flow run and its ``run`` row: succeeded / failed by the outcome policy, or failed
    if the body raised.

    Runs whose process died are closed as interrupted first; this run's report and artifacts include them.
    """
    services = services_for(base_url, settings)
    closed = close_interrupted_runs(services.engine, stale_after=stale_after(services.settings))
    run = TrackedRun(services, start_run(services.engine, kind, params.model_dump(mode="json")), kind)
    name_flow_run_after(kind, run.run_id)  # the UI's flow run now names the run its artifacts talk about
    run.log.notes += [f"{c.describe()}; this run finished its work and reports it" for c in closed]
    status = RunStatus.FAILED
    try:
        yield run
        status = RunStatus.SUCCEEDED if run.ok else RunStatus.FAILED
    finally:
        finish_run(services.engine, run.run_id, status, run.totals)
        services.close()


def judge_and_publish(services: Services, run_id: int, kind: str, log: RunLog, *, final: bool = True) -> JudgedRun:
    """Apply the outcome policy, publish the run's artifacts and emit ``nightbatch.run.finished`` (when
    ``final``; ``nightbatch.run.submitted`` for a run whose batches the collect deployment finishes)."""
    judged = judge_run(services.engine, services.prices, run_id, log,
                       max_failed_share=services.settings.max_failed_share, registry=services.registry)  # fmt: skip
    publish_run_artifacts(services, judged, log)
    events.run_finished(judged, kind, final=final or not judged.facts.open_batches)
    logger = get_run_logger()
    # INFO either way: the state (Completed or Failed) carries the verdict; the CLI prints it once.
    logger.info("run %s: %s", run_id, judged.outcome.message)
    return judged


def finish(run: TrackedRun, *, waited: bool, extra: dict[str, Any] | None = None) -> State[dict[str, Any]]:
    """The flow's final state: Completed or Failed by the outcome policy, with the night summed up.

    A run that did not wait is judged on what it did (submitting); the collect flow judges it again
    once its last batch is in (``waited: false`` in its totals tells collect to).
    """
    judged = judge_and_publish(run.services, run.run_id, run.kind, run.log, final=waited)
    # Nothing left open: this judgement is final, collect has nothing to judge again.
    handed_over = not waited and judged.facts.open_batches > 0
    run.totals = {**judged.totals(run.log), **(extra or {}), "waited": not handed_over}
    run.ok = judged.outcome.ok
    return final_state(judged.outcome.ok, judged.outcome.message, {"run_id": run.run_id, **run.totals})


def final_state(ok: bool, message: str, data: dict[str, Any]) -> State[dict[str, Any]]:
    """A flow's verdict as its final state: Completed with ``data``, or Failed with ``data`` inside a
    :class:`~nightbatch.errors.RunFailedError` (Prefect resolves a Failed state's data into an exception)."""
    if ok:
        return Completed(message=message, data=data)
    return Failed(message=message, data=RunFailedError(message, data))
