"""Flow ``nightbatch-collect``: poll every open batch once, ingest the ended ones. Safe on a schedule.

Each ended batch is ingested by its own task run (``ingest-batch-<id>``), so the UI shows one task run
per batch with its retries. When the last open batch of a run is in, the run is judged (outcome policy),
its summary published and ``nightbatch.run.finished`` emitted; a run with problems makes this flow Failed.
"""

from __future__ import annotations

from typing import Any

from prefect import State, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows import events, names
from flows.artifacts import publish_progress_table
from flows.params import CollectParams, SubmitParams
from flows.runtime import FlowSettings, final_state, judge_and_publish, services_for
from flows.submit import log_submit, submit_batches
from nightbatch.collect.ingest import IngestReport
from nightbatch.collect.poll import CollectReport, ended_batches, ingest_one, poll_open_batches
from nightbatch.db.models import RunStatus
from nightbatch.db.run_tasks import batch_label, run_open_batches, run_record
from nightbatch.db.transient import is_operational_error, retry_transient
from nightbatch.errors import RetryableProviderError, StorageError
from nightbatch.run_facts import JudgedRun, RunLog
from nightbatch.runs import finish_run
from nightbatch.services import Services


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass on a second try: the API or the object store failing, a locked database."""
    try:
        state.result()
    except (RetryableProviderError, StorageError):
        return True
    except Exception as exc:  # beyond a locked database, a bug or bad input: retrying cannot help
        return is_operational_error(exc)
    return False


RETRIES: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "retries": 2,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_condition_fn": _transient,
}


@task(name="poll-batches", task_run_name="poll-open-batches", **RETRIES)
def poll_batches(services: Services) -> CollectReport:
    # Polling only records what the API says, so retrying is safe.
    return poll_open_batches(services)


@task(name="ingest-batch", task_run_name="ingest-batch-{batch_id}", **RETRIES)
def ingest(services: Services, batch_id: int) -> IngestReport | None:
    # Ingest is guarded by the batch lease and row status (idempotent), so a retry is safe.
    return ingest_one(services, batch_id)


def collect_batches(services: Services) -> tuple[int, list[IngestReport]]:
    """Poll once, then ingest every ended batch in its own task run; (batches still open, what was ingested)."""
    logger = get_run_logger()
    report = poll_batches(services)
    for error in report.errors:
        logger.warning(error)
    ingested: list[IngestReport] = []
    for batch_id in ended_batches(services):
        state = ingest(services, batch_id, return_state=True)
        if state.is_failed():
            logger.warning("batch %s: ingest failed after retries; the next collect tries again", batch_id)
            continue
        result = state.result()
        if result is None:
            continue
        ingested.append(result)
        task_type, model, _run = batch_label(services.engine, batch_id)
        events.batch_ended(result, task_type, model)
    logger.info("polled %d batches (%d still open), ingested %d", report.polled, report.still_open, len(ingested))
    return report.still_open, ingested


def send_fanouts(services: Services, ingested: list[IngestReport]) -> None:
    """A pilot's end moves its group on: the tasks that waited for it go out now, under the pilot's run.

    A scheduled night hands its waiting to this flow, so without this its fan-out would wait for the next
    submit (and its pilot's 1-hour cache entry could lapse meanwhile).
    """
    runs = {batch_label(services.engine, r.batch_id)[2] for r in ingested if r.pilot_ended}
    for run_id in sorted(runs, key=lambda r: -1 if r is None else r):
        submitted = retry_transient(lambda: submit_batches(services, SubmitParams(), run_id), what="submit")  # noqa: B023
        log_submit(submitted)


def finish_handed_over_runs(services: Services, ingested: list[IngestReport]) -> list[JudgedRun]:
    """Judge each run whose last open batch this collect ingested (a nightly that did not wait)."""
    judged: list[JudgedRun] = []
    runs = {batch_label(services.engine, r.batch_id)[2] for r in ingested}
    for run_id in sorted(r for r in runs if r is not None):
        record = run_record(services.engine, run_id)
        if record is None or run_open_batches(services.engine, run_id):
            continue
        kind, totals = record
        if not totals or totals.get("waited", True):
            continue  # a waiting flow judges its own run
        log = RunLog.from_totals(totals)
        verdict = judge_and_publish(services, run_id, kind, log)
        finish_run(services.engine, run_id, RunStatus.SUCCEEDED if verdict.outcome.ok else RunStatus.FAILED,
                   {**verdict.totals(log), "waited": False, "collected": True})  # fmt: skip
        judged.append(verdict)
    return judged


@flow(name="nightbatch-collect", flow_run_name=names.flow_run_name("collect"))
def collect(params: CollectParams | None = None, settings: FlowSettings | None = None) -> State[dict[str, Any]]:
    params = params or CollectParams()
    services = services_for(params.base_url, settings)
    try:
        still_open, ingested = collect_batches(services)
        send_fanouts(services, ingested)  # before judging: a run whose pilot just ended is not finished
        publish_progress_table(services, None, description="open batches")
        judged = finish_handed_over_runs(services, ingested)
        result = {"open": still_open, "ingested_batches": len(ingested), "finished_runs": [j.run_id for j in judged]}
        message = f"{len(ingested)} batch(es) ingested, {still_open} still open"
        for j in judged:
            message += f"; run {j.run_id} finished: {j.outcome.message}"
        return final_state(all(j.outcome.ok for j in judged), message, result)
    finally:
        services.close()
