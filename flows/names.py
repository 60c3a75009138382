"""Names the Prefect UI shows for flow runs and task runs, so an operator can tell runs apart at a glance.

Without these Prefect names a flow run ``nondescript-stallion`` and a task run ``submit-batches-ccc``: nothing
ties them to the nightbatch run (``run 1``) that the artifacts and logs talk about. Flow runs are named after
what they do and the time they were scheduled for (``nightly 2026-11-30 01:00 UTC``); a flow that keeps a
``run`` row renames its flow run once it has the row (``nightly run 1, 2026-11-30 01:00 UTC``). Task runs
are named after the run they work for (``submit-run-1``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run


def _scheduled_for() -> str:
    # The scheduled time, not the start: a night that starts late is still that night's run.
    when = flow_run.scheduled_start_time
    when = when if isinstance(when, datetime) else datetime.now(UTC)
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def flow_run_name(kind: str) -> Callable[[], str]:
    """A ``flow_run_name`` for ``@flow``: ``<kind> <scheduled time> UTC``."""

    def name() -> str:
        return f"{kind} {_scheduled_for()}"

    return name


def tracked_flow_run_name(kind: str, run_id: int) -> str:
    """The name of a flow run that keeps nightbatch run ``run_id``."""
    return f"{kind} run {run_id}, {_scheduled_for()}"


def name_flow_run_after(kind: str, run_id: int) -> None:
    """Rename the current flow run to name its nightbatch run; a failure to do so only costs the name."""
    flow_run_id = flow_run.id
    if flow_run_id is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_name(flow_run_id, tracked_flow_run_name(kind, run_id))
    except Exception as exc:  # the API being briefly unreachable must not fail a night over a label
        get_run_logger().warning("flow run %s keeps its name (renaming failed: %s)", flow_run_id, exc)


def for_run(prefix: str) -> Callable[..., str]:
    """A ``task_run_name`` for tasks with a ``run_id`` parameter: ``<prefix>-run-<id>``, or ``<prefix>``."""

    def name(parameters: dict[str, Any]) -> str:
        run_id = parameters.get("run_id")
        return prefix if run_id is None else f"{prefix}-run-{run_id}"

    return name


def _enqueue_name(parameters: dict[str, Any]) -> str:
    source = str(parameters.get("source") or "").rstrip("/")
    return f"enqueue-{PurePosixPath(source).name or 'source'}"


# Typed loosely: Prefect's protocol for callbacks taking ``parameters`` has a classmethod no function has.
enqueue_name: Callable[..., str] = _enqueue_name
"""``enqueue-<file or folder name>`` for the enqueue task (the whole path is in its parameters)."""
