"""Flow ``nightbatch-submit``: reconcile -> claim -> route -> build -> pack -> submit."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from flows.params import SubmitParams
from flows.runtime import services_for
from nightbatch.services import Services
from nightbatch.submit.step import SubmitReport, submit_step


@task(name="submit-batches", cache_policy=NO_CACHE)
def submit_batches(
    services: Services,
    params: SubmitParams,
    run_id: int | None,
    budget_usd: Decimal | None = None,
    deadline: datetime | None = None,
) -> SubmitReport:
    # No Prefect retries: submitting is made safe by the database (reconcile), not by re-running blindly.
    # With NIGHTBATCH_SUBMIT_CONCURRENCY_LIMIT set (the deployments set `nightbatch-submit`), one submitter
    # at a time across workers keeps within the API's queue and rate limits; the database keeps it safe anyway.
    limit = services.settings.submit_concurrency_limit
    with concurrency(limit, occupy=1, strict=False) if limit else nullcontext():
        return submit_step(
            services,
            limit=params.limit,
            task_types=params.task_types,
            run_id=run_id,
            expected_minutes=params.expected_batch_minutes,
            budget_usd=budget_usd if budget_usd is not None else params.budget_usd,
            deadline=deadline,
        )


def log_submit(report: SubmitReport) -> dict[str, Any]:
    logger = get_run_logger()
    for line in report.reconciled:
        logger.warning(line)
    logger.info(
        "claimed %d tasks, submitted %d in %d batches (forecast at most $%s), %d failed before sending",
        report.claimed,
        report.submitted_tasks,
        len(report.batches),
        f"{report.forecast_usd:.4f}",
        report.failed_tasks,
    )
    if report.pilots or report.waiting_tasks:
        logger.info("%d pilot batch(es) sent; %d task(s) wait for their group's pilot", report.pilots,
                    report.waiting_tasks)  # fmt: skip
    for task_type, count in report.unconfigured_queued.items():
        logger.warning("%d queued task(s) of type %r wait: no task-type config for it here", count, task_type)
    for reason, count in sorted(report.failure_reasons.items(), key=lambda item: -item[1]):
        logger.warning("%d task(s) failed before sending: %s", count, reason)
    if report.nothing_sent:
        logger.warning("nothing sent: %s", report.nothing_sent)
    if report.stopped:
        logger.warning(report.stopped)
    if report.budget_stopped:
        logger.warning("budget stop: %s; the rest stays queued", report.budget_stopped)
    return {
        "claimed": report.claimed,
        "submitted": report.submitted_tasks,
        "batches": len(report.batches),
        "forecast_usd": str(report.forecast_usd),
        "budget_stopped": report.budget_stopped,
        "nothing_sent": report.nothing_sent,
        "failed": report.failed_tasks,
        "failure_reasons": report.failure_reasons,
    }


@flow(name="nightbatch-submit")
def submit(params: SubmitParams | None = None) -> dict[str, Any]:
    params = params or SubmitParams()
    services = services_for(params.base_url)
    try:
        return log_submit(submit_batches(services, params, None))
    finally:
        services.close()
