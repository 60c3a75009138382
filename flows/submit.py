"""Flow ``nightbatch-submit``: reconcile -> claim -> route -> build -> pack -> submit."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal
from typing import Any

from prefect import State, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from flows import names
from flows.params import SubmitParams
from flows.runtime import FlowSettings, final_state, services_for
from nightbatch.outcome_policy import RunFacts, RunOutcome, decide_outcome
from nightbatch.services import Services
from nightbatch.submit.chunks import submit_in_chunks
from nightbatch.submit.step import SubmitReport


@task(name="submit-batches", task_run_name=names.for_run("submit"), cache_policy=NO_CACHE)
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
        # A batch's worth at a time, whatever params.limit: a worker's memory stays flat (issue 20).
        return submit_in_chunks(
            services,
            limit=params.limit,
            task_types=params.task_type,
            run_id=run_id,
            expected_minutes=params.expected_batch_minutes,
            budget_usd=budget_usd if budget_usd is not None else params.budget_usd,
            deadline=deadline,
        )


def log_submit(report: SubmitReport) -> None:
    logger = get_run_logger()
    for line in report.reconciled:
        logger.warning(line)
    logger.info(
        "claimed %s tasks, submitted %s in %s batches (forecast at most %s), %s failed before sending",
        f"{report.claimed:,}",
        f"{report.submitted_tasks:,}",
        f"{len(report.batches):,}",
        f"${report.forecast_usd:,.2f}",
        f"{report.failed_tasks:,}",
    )
    if report.pilots or report.waiting_tasks:
        logger.info("%d pilot batch(es) sent; %d task(s) wait for their group's pilot", report.pilots,
                    report.waiting_tasks)  # fmt: skip
    if report.deduplicated or report.reused:  # nightbatch.submit.dedup / .reuse: answered without a request
        logger.info("%d twin(s) of identical requests wait for their leader's result; %d served from earlier "
                    "answers", report.deduplicated, report.reused)  # fmt: skip
    explained = {reason.split(":", 1)[0] for reason in report.failure_reasons}  # "error_type: message"
    for error_type, count in report.failed_by_error.items():
        if error_type not in explained:  # the reasons below say it again, with the cause: one warning is enough
            logger.warning("%s task(s) failed before sending (%s)", f"{count:,}", error_type)
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


def submit_outcome(report: SubmitReport, max_failed_share: Decimal) -> RunOutcome:
    """The outcome policy applied to one submit: a budget stop or too many failures before sending fail it."""
    facts = RunFacts(outcomes={"submitted": report.submitted_tasks}, failed_before_sending=report.failed_by_error,
                     budget_stopped=report.budget_stopped, cost_usd=Decimal(0))  # fmt: skip
    return decide_outcome(facts, max_failed_share=max_failed_share)


def submit_result(report: SubmitReport, outcome: RunOutcome) -> dict[str, Any]:
    return {
        "outcome": {"ok": outcome.ok, "reasons": list(outcome.reasons), "message": outcome.message},
        "claimed": report.claimed,
        "submitted": report.submitted_tasks,
        "batches": len(report.batches),
        "failed_before_sending": report.failed_by_error,
        "forecast_usd": str(report.forecast_usd),
        "budget_stopped": report.budget_stopped,
        "nothing_sent": report.nothing_sent,
        "failed": report.failed_tasks,
        "failure_reasons": report.failure_reasons,
    }


@flow(name="nightbatch-submit", flow_run_name=names.flow_run_name("submit"))
def submit(params: SubmitParams | None = None, settings: FlowSettings | None = None) -> State[dict[str, Any]]:
    params = params or SubmitParams()
    services = services_for(params.base_url, settings)
    try:
        report = submit_batches(services, params, None)
        log_submit(report)
        outcome = submit_outcome(report, services.settings.max_failed_share)
        message = f"{report.submitted_tasks:,} submitted in {len(report.batches):,} batch(es), forecast at most " \
                  f"${report.forecast_usd:,.2f}"  # fmt: skip
        if report.failed_tasks:
            message += f"; {report.failed_tasks:,} failed before sending"
        if not outcome.ok:
            message = f"Problems: {'; '.join(outcome.reasons)}. {message}"
        result = submit_result(report, outcome)
        return final_state(outcome.ok, message, result)
    finally:
        services.close()
