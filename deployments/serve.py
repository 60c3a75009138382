"""Single box, no work pool and no worker: serve the deployments of ``prefect.yaml`` from this one process.

Run from the repository root, with ``PREFECT_API_URL`` pointing at a Prefect server::

    python -m deployments.serve

Schedules, parameters and concurrency limits are read from ``deployments/prefect.yaml``, so the served
deployments are the same as the ones ``prefect deploy`` creates; flow runs execute as subprocesses here. So do
the ``env`` job variables (a worker sets them per flow run; here they are set in this process, whose
environment the flow runs inherit): e.g. task runs logging at WARNING, without one "Finished in state
Completed()" line per task run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import yaml  # type: ignore[import-untyped]
from prefect import Flow, serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron, Schedule

PREFECT_FILE = Path(__file__).with_name("prefect.yaml")


def _schedules(config: dict[str, Any]) -> list[Schedule]:
    return [
        Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True), slug=s.get("slug"))
        for s in config.get("schedules") or []
    ]


def _concurrency(config: dict[str, Any]) -> int | ConcurrencyLimitConfig | None:
    limit = config.get("concurrency_limit")
    if isinstance(limit, dict):
        strategy = ConcurrencyLimitStrategy(limit.get("collision_strategy", "ENQUEUE"))
        return ConcurrencyLimitConfig(limit=limit["limit"], collision_strategy=strategy)
    return cast(int | None, limit)


def runner_deployments(prefect_file: Path = PREFECT_FILE) -> list[RunnerDeployment]:
    """One served deployment per entry of ``prefect_file`` (work pools are not used when serving)."""
    spec = yaml.safe_load(prefect_file.read_text(encoding="utf-8"))
    deployments: list[RunnerDeployment] = []
    for config in spec["deployments"]:
        flow: Flow[..., Any] = load_flow_from_entrypoint(config["entrypoint"])
        deployment = cast(
            RunnerDeployment,
            flow.to_deployment(
                name=config["name"],
                schedules=_schedules(config),
                concurrency_limit=_concurrency(config),
                parameters=config.get("parameters") or {},
                description=config.get("description"),
                tags=config.get("tags"),
                enforce_parameter_schema=config.get("enforce_parameter_schema", True),
            ),
        )
        deployments.append(deployment)
    return deployments


def flow_run_env(prefect_file: Path = PREFECT_FILE) -> dict[str, str]:
    """The ``work_pool.job_variables.env`` of the file's deployments, which must agree: served flow runs share
    this process's environment."""
    spec = yaml.safe_load(prefect_file.read_text(encoding="utf-8"))
    env: dict[str, str] = {}
    for config in spec["deployments"]:
        for key, value in (((config.get("work_pool") or {}).get("job_variables") or {}).get("env") or {}).items():
            if env.setdefault(key, str(value)) != str(value):
                raise ValueError(f"{prefect_file}: {key} differs between deployments; serving runs them in one process")
    return env


if __name__ == "__main__":
    for name, value in flow_run_env().items():
        os.environ.setdefault(name, value)  # set before any flow run starts; a value given by the operator wins
    serve(*runner_deployments())
