"""The submit -> collect rounds shared by the nightly and backfill flows (wiring only)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prefect import get_run_logger

from flows import events
from flows.artifacts import RunProgress, publish_progress_table
from flows.collect import collect_batches, finish_handed_over_runs
from flows.deadline import enforce_deadline, run_margin
from flows.params import SubmitParams
from flows.submit import log_submit, submit_batches
from nightbatch.collect.wait import Backoff
from nightbatch.db.transient import retry_transient
from nightbatch.pipeline.graph import StageGraph
from nightbatch.run_facts import RunLog
from nightbatch.runs import heartbeat
from nightbatch.services import Services
from nightbatch.sources import queued_count


def submit_round(
    services: Services, params: SubmitParams, run_id: int, log: RunLog, deadline: datetime | None = None
) -> None:
    """One submit; the run's budget spans its rounds (each gets what the earlier ones left).

    ``deadline`` bounds the cache planner: no pilot is sent that could not finish, with its fan-out, before it.
    """
    remaining = None if params.budget_usd is None else max(Decimal(0), params.budget_usd - log.forecast_usd)
    submitted = retry_transient(lambda: submit_batches(services, params, run_id, remaining, deadline), what="submit")
    log_submit(submitted)
    log.forecast_usd += submitted.forecast_usd
    log.submitted_tasks += submitted.submitted_tasks
    log.batches += len(submitted.batches)
    log.add_failures(submitted.failed_by_error)
    log.notes += submitted.reconciled
    if submitted.stopped:
        log.notes.append(submitted.stopped)
    if submitted.budget_stopped and not log.budget_stopped:
        log.budget_stopped = submitted.budget_stopped
        log.notes.append(f"budget stop: {submitted.budget_stopped}; the rest stays queued")
        events.budget_stopped(run_id, submitted.budget_stopped)


def submit_and_collect(
    services: Services,
    params: SubmitParams,
    run_id: int,
    log: RunLog,
    *,
    deadline_minutes: float,
    poll_seconds: float,
) -> None:
    """Submit, then collect until no batch is open; again while retryable or stage tasks wait, up to the deadline.

    When a collect ingests a pilot batch, the tasks of its group that waited are submitted at once (the
    group's fan-out), without waiting for the other open batches. A budget stop ends the submitting but not
    the collecting of what already went out.
    """
    backoff = Backoff(cap=poll_seconds, deadline_seconds=deadline_minutes * 60)
    deadline = datetime.now(UTC) + timedelta(minutes=deadline_minutes)
    progress = RunProgress(services, run_id)
    still_open = 0
    # At the run deadline's margin open batches are canceled and due tasks settled (nightbatch.deadline).
    margin = run_margin(services, deadline_minutes)
    past_margin = False

    def deadline_tick() -> bool:
        nonlocal past_margin
        done = retry_transient(
            lambda: enforce_deadline(services, run_id, deadline, margin, params.task_type, params.budget_usd),
            what="deadline",
        )
        log.notes.extend(done.notes())
        past_margin = past_margin or done.run_margin_passed
        return past_margin

    # Pipeline stages: a run for some types also works on the stages downstream of them (a backfill of stage 1
    # flows into stage 2), and each stage of the longest chain gets a round of its own.
    stages = StageGraph.of(services.registry)
    if stages and params.task_type:
        params = params.model_copy(update={"task_type": stages.closure(params.task_type)})
    for _round in range(services.settings.max_attempts + stages.depth()):
        # A database restart mid-run is ridden out at the step boundary: the steps are safe to re-run.
        retry_transient(lambda: heartbeat(services.engine, run_id), what="heartbeat")
        if deadline_tick():
            break  # nothing more goes out once the run's deadline is within its margin
        submit_round(services, params, run_id, log, deadline)
        backoff.reset()
        while True:
            retry_transient(lambda: heartbeat(services.engine, run_id), what="heartbeat")
            still_open, ingested = retry_transient(lambda: collect_batches(services), what="collect")
            finish_handed_over_runs(services, ingested)  # an earlier night's last batch may end here
            progress.update()
            deadline_tick()
            if any(r.pilot_ended for r in ingested) and not log.budget_stopped and not past_margin:
                # A group's pilot has ended: its waiting tasks go out now, while other batches still run.
                submit_round(services, params, run_id, log, deadline)
                backoff.reset()
                continue
            if still_open == 0 or backoff.expired:
                break
            time.sleep(backoff.next_delay())
        publish_progress_table(services, run_id, description=f"run {run_id}: batches")
        if past_margin or log.budget_stopped or backoff.expired or queued_count(services, params.task_type) == 0:
            break
    if backoff.expired and still_open:
        log.deadline_passed = True
        message = f"deadline passed with {still_open} batch(es) still open; the collect deployment will finish them"
        get_run_logger().warning(message)
        log.notes.append(message)
        events.deadline_passed(run_id, still_open)


def submit_only(services: Services, params: SubmitParams, run_id: int, log: RunLog) -> None:
    """Submit once and return: the scheduled ``collect`` deployment polls and ingests the batches."""
    submit_round(services, params, run_id, log)
    RunProgress(services, run_id).update()
    publish_progress_table(services, run_id, description=f"run {run_id}: batches (collect finishes them)")
