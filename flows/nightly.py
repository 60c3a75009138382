"""Flow ``nightbatch-nightly``: enqueue from a source if given -> submit -> collect until done or deadline.

Tasks that come back retryable (errored, expired, canceled) are re-submitted in later rounds of the
same run, up to each task's attempt limit and the deadline.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.params import NightlyParams
from flows.rounds import submit_and_collect
from flows.runtime import tracked_run
from nightbatch.services import Services
from nightbatch.sources import EnqueueSummary, enqueue_source


def log_enqueued(enqueued: EnqueueSummary) -> None:
    """What went in, and each refused file as a warning (nothing of it was enqueued)."""
    logger = get_run_logger()
    logger.info(enqueued.describe())
    for error in enqueued.errors:
        logger.warning("task file refused, nothing of it enqueued: %s", error)


@task(name="enqueue-source", cache_policy=NO_CACHE)
def enqueue_from(services: Services, source: str, task_type: str | None) -> EnqueueSummary:
    return enqueue_source(services, source, default_task_type=task_type)


@flow(name="nightbatch-nightly")
def nightly(params: NightlyParams | None = None) -> dict[str, Any]:
    params = params or NightlyParams()
    with tracked_run("nightly", params, params.base_url) as run:
        refused: list[str] = []
        if params.source:
            enqueued = enqueue_from(run.services, params.source, params.source_task_type)
            log_enqueued(enqueued)
            refused = [f"task file refused (nothing of it enqueued): {error}" for error in enqueued.errors]
        run.totals = submit_and_collect(
            run.services,
            params,
            run.run_id,
            deadline_minutes=params.deadline_minutes,
            poll_seconds=params.poll_seconds,
            notes=[*run.notes, *refused],
        )
        return {"run_id": run.run_id, **run.totals}
