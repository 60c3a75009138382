"""Flow ``nightbatch-nightly``: enqueue from a source if given -> submit -> hand over to collect, or wait.

Scheduled, it submits and returns: the ``collect`` deployment (every few minutes) polls and ingests, and
judges the night once its last batch is in. With ``wait`` (``nightbatch run``, the demo, ad hoc runs) it
collects until done or the deadline itself, re-submitting retryable tasks (errored, expired, canceled)
in later rounds, up to each task's attempt limit. The final state follows the outcome policy
(:mod:`nightbatch.outcome_policy`): Failed for a budget stop, a passed deadline, a refused source file or
too many failed tasks; Completed otherwise, the night summed up in the state message.
"""

from __future__ import annotations

from typing import Any

from prefect import State, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import names
from flows.params import NightlyParams
from flows.rounds import submit_and_collect, submit_only
from flows.runtime import FlowSettings, TrackedRun, finish, tracked_run
from nightbatch.services import Services
from nightbatch.sources import EnqueueSummary, enqueue_source


def log_enqueued(enqueued: EnqueueSummary) -> None:
    """What went in, and each refused file as a warning (nothing of it was enqueued)."""
    logger = get_run_logger()
    logger.info(enqueued.describe())
    for error in enqueued.errors:
        logger.warning("task file refused, nothing of it enqueued: %s", error)


@task(name="enqueue-source", task_run_name=names.enqueue_name, cache_policy=NO_CACHE)
def enqueue_from(services: Services, source: str, task_type: str | None) -> EnqueueSummary:
    return enqueue_source(services, source, default_task_type=task_type)


def enqueue_into(run: TrackedRun, source: str | None, task_type: str | None) -> EnqueueSummary | None:
    """Enqueue ``source`` (if any); each refused file goes into the run's log (it fails the run)."""
    if not source:
        return None
    enqueued = enqueue_from(run.services, source, task_type)
    log_enqueued(enqueued)
    run.log.refused_files += enqueued.errors
    run.log.notes += [f"task file refused (nothing of it enqueued): {error}" for error in enqueued.errors]
    return enqueued


@flow(name="nightbatch-nightly", flow_run_name=names.flow_run_name("nightly"))
def nightly(params: NightlyParams | None = None, settings: FlowSettings | None = None) -> State[dict[str, Any]]:
    """``settings``: the caller's settings without secrets (see :mod:`flows.runtime`); none: the worker's."""
    params = params or NightlyParams()
    with tracked_run("nightly", params, params.base_url, settings) as run:
        enqueue_into(run, params.source, params.source_task_type)
        if params.wait:
            submit_and_collect(run.services, params, run.run_id, run.log,
                               deadline_minutes=params.deadline_minutes, poll_seconds=params.poll_seconds)  # fmt: skip
        else:
            submit_only(run.services, params, run.run_id, run.log)
        return finish(run, waited=params.wait)
