"""The submit -> collect rounds shared by the nightly and backfill flows (wiring only)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prefect import get_run_logger

from flows.artifacts import BatchProgress, publish_run_artifacts
from flows.collect import collect_results, log_collect
from flows.deadline import enforce_deadline, run_margin
from flows.params import SubmitParams
from flows.submit import log_submit, submit_batches
from nightbatch.collect.wait import Backoff
from nightbatch.db.transient import retry_transient
from nightbatch.report.summary import summarize
from nightbatch.runs import heartbeat
from nightbatch.services import Services
from nightbatch.sources import queued_count


def submit_and_collect(
    services: Services,
    params: SubmitParams,
    run_id: int,
    *,
    deadline_minutes: float,
    poll_seconds: float,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Submit, then collect until no batch is open; again while retryable tasks wait, up to the deadline.

    When a collect ingests a pilot batch, the tasks of its group that waited are submitted at once (the
    group's fan-out), without waiting for the other open batches. The deadline also bounds the planner:
    no pilot is sent that could not finish, with its fan-out, before it.

    The run's budget spans its rounds (each gets what the earlier ones left); a budget stop ends the
    submitting but not the collecting of what already went out. Returns the run's totals.
    """
    logger = get_run_logger()
    backoff = Backoff(cap=poll_seconds, deadline_seconds=deadline_minutes * 60)
    progress = BatchProgress()
    notes = list(notes or [])
    forecast = Decimal(0)
    budget_stopped: str | None = None
    deadline = datetime.now(UTC) + timedelta(minutes=deadline_minutes)
    # At the run deadline's margin open batches are canceled and due tasks settled (nightbatch.deadline).
    margin = run_margin(services, deadline_minutes)
    past_margin = False

    def deadline_tick() -> bool:
        nonlocal past_margin
        done = retry_transient(
            lambda: enforce_deadline(services, run_id, deadline, margin, params.task_types, params.budget_usd),
            what="deadline",
        )
        notes.extend(done.notes())
        past_margin = past_margin or done.run_margin_passed
        return past_margin

    def submit() -> None:
        nonlocal forecast, budget_stopped
        remaining = None if params.budget_usd is None else max(Decimal(0), params.budget_usd - forecast)
        # A database restart mid-run is ridden out at the step boundary: the steps are safe to re-run.
        retry_transient(lambda: heartbeat(services.engine, run_id), what="heartbeat")
        submitted = retry_transient(
            lambda: submit_batches(services, params, run_id, remaining, deadline),
            what="submit",
        )
        forecast += submitted.forecast_usd
        budget_stopped = budget_stopped or submitted.budget_stopped
        notes.extend(submitted.reconciled)
        if submitted.stopped:
            notes.append(submitted.stopped)
        log_submit(submitted)

    for _round in range(services.settings.max_attempts + 1):
        if deadline_tick():
            break  # nothing more goes out once the run's deadline is within its margin
        submit()
        backoff.reset()
        while True:
            retry_transient(lambda: heartbeat(services.engine, run_id), what="heartbeat")
            report = retry_transient(lambda: collect_results(services), what="collect")
            progress.update(report)
            collected = log_collect(report)
            deadline_tick()
            if report.pilots_ended and not budget_stopped and not past_margin:
                # A group's pilot has ended: its waiting tasks go out now, while other batches still run.
                submit()
                backoff.reset()
                continue
            if collected["open"] == 0 or backoff.expired:
                break
            time.sleep(backoff.next_delay())
        if past_margin or budget_stopped or backoff.expired or queued_count(services, params.task_types) == 0:
            break
    if backoff.expired:
        logger.warning("deadline passed with batches still open; the collect flow will finish them")
        notes.append("deadline passed with batches still open; the collect flow will finish them")
    if budget_stopped:
        notes.append(f"budget stop: {budget_stopped}; the rest stays queued")
    publish_run_artifacts(services, run_id, notes)
    summary = summarize(services.engine, services.prices, run_id=run_id, registry=services.registry)
    return {
        "outcomes": summary.outcomes,
        "cost_usd": str(summary.cost_usd),
        "baseline_usd": str(summary.baseline_usd),
        "prefix_hit_rate": summary.prefix_hit_rate,
        "cache_hit_rate": summary.cache_hit_rate,  # read ÷ (read + write), the second figure
        "forecast_usd": str(forecast),
        "budget_stopped": budget_stopped,
    }
