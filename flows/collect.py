"""Flow ``nightbatch-collect``: poll every open batch once, ingest the ended ones. Safe on a schedule."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import OperationalError

from flows.artifacts import BatchProgress
from flows.params import CollectParams
from flows.runtime import services_for
from nightbatch.collect.poll import CollectReport, collect_step
from nightbatch.errors import RetryableProviderError, StorageError
from nightbatch.services import Services


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass on a second try: the API or the object store failing, a locked database."""
    try:
        state.result()
    except (RetryableProviderError, StorageError, OperationalError):
        return True
    except Exception:  # anything else is a bug or bad input: retrying cannot help
        return False
    return False


@task(
    name="collect-results",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_condition_fn=_transient,
)
def collect_results(services: Services) -> CollectReport:
    # Polling and ingesting are idempotent (ingest is guarded by batch leases and row status), so retrying is safe.
    return collect_step(services)


def log_collect(report: CollectReport) -> dict[str, Any]:
    logger = get_run_logger()
    for error in report.errors:
        logger.warning(error)
    ingested = sum(sum(r.outcomes.values()) for r in report.ingested)
    logger.info(
        "polled %d batches (%d still open), ingested %d batches / %d results",
        report.polled,
        report.still_open,
        len(report.ingested),
        ingested,
    )
    return {"polled": report.polled, "open": report.still_open, "ingested_batches": len(report.ingested)}


@flow(name="nightbatch-collect")
def collect(params: CollectParams | None = None) -> dict[str, Any]:
    params = params or CollectParams()
    services = services_for(params.base_url)
    try:
        report = collect_results(services)
        BatchProgress().update(report)
        return log_collect(report)
    finally:
        services.close()
