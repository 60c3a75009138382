"""Flow ``nightbatch-nightly``: enqueue from a source if given -> submit -> collect until done or deadline.

Tasks that come back retryable (errored, expired, canceled) are re-submitted in later rounds of the
same run, up to each task's attempt limit and the deadline.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.collect import collect_results, log_collect
from flows.params import NightlyParams
from flows.runtime import services_for
from flows.submit import log_submit, submit_batches
from nightbatch.collect.wait import Backoff
from nightbatch.db.models import RunStatus
from nightbatch.report.summary import summarize
from nightbatch.runs import finish_run, start_run
from nightbatch.services import Services
from nightbatch.sources import EnqueueSummary, enqueue_source, queued_count


@task(name="enqueue-source", cache_policy=NO_CACHE)
def enqueue_from(services: Services, source: str, task_type: str | None) -> EnqueueSummary:
    return enqueue_source(services, source, default_task_type=task_type)


@flow(name="nightbatch-nightly")
def nightly(params: NightlyParams | None = None) -> dict[str, Any]:
    params = params or NightlyParams()
    logger = get_run_logger()
    services = services_for(params.base_url)
    run_id = start_run(services.engine, "nightly", params.model_dump(mode="json"))
    status = RunStatus.FAILED
    totals: dict[str, Any] = {}
    try:
        if params.source:
            enqueued = enqueue_from(services, params.source, params.source_task_type)
            logger.info(enqueued.describe())
        backoff = Backoff(cap=params.poll_seconds, deadline_seconds=params.deadline_minutes * 60)
        for _round in range(services.settings.max_attempts + 1):
            log_submit(submit_batches(services, params, run_id))
            backoff.reset()
            while True:
                collected = log_collect(collect_results(services))
                if collected["open"] == 0 or backoff.expired:
                    break
                time.sleep(backoff.next_delay())
            if backoff.expired or queued_count(services, params.task_types) == 0:
                break
        if backoff.expired:
            logger.warning("deadline passed with batches still open; the collect flow will finish them")
        summary = summarize(services.engine, services.prices, run_id=run_id)
        totals = {
            "outcomes": summary.outcomes,
            "cost_usd": str(summary.cost_usd),
            "baseline_usd": str(summary.baseline_usd),
            "cache_hit_rate": summary.cache_hit_rate,
        }
        status = RunStatus.SUCCEEDED
        return {"run_id": run_id, **totals}
    finally:
        finish_run(services.engine, run_id, status, totals)
        services.close()
