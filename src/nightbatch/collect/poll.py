"""The collect step: poll open batches, then ingest the ended ones.

Polling never waits: each call looks once at every open batch, records what the provider says and
returns, so it can run every few minutes from a schedule (and concurrently with submitting) without
holding a worker for a batch's 24 hours. Ingesting takes a lease on the batch row, so two collectors
never ingest the same batch at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nightbatch.claude.client import not_visible_yet
from nightbatch.collect.ingest import IngestReport, ingest_batch
from nightbatch.db import batches
from nightbatch.db.models import BatchStatus
from nightbatch.errors import ProviderError
from nightbatch.runs import close_interrupted_runs, stale_after
from nightbatch.services import Services

__all__ = ["CollectReport", "collect_step", "ended_batches", "ingest_one", "open_batches", "poll_open_batches"]

log = logging.getLogger(__name__)


@dataclass
class CollectReport:
    polled: int = 0
    still_open: int = 0
    ingested: list[IngestReport] = field(default_factory=list)
    progress: dict[int, dict[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    not_yet_visible: int = 0  # just-created batches the API still answered 404 for (looked at again next poll)
    closed_runs: list[str] = field(default_factory=list)  # runs found dead and closed as interrupted

    @property
    def pilots_ended(self) -> int:
        """Pilot batches ingested by this call: their groups' waiting tasks may be submitted at once."""
        return sum(r.pilot_ended for r in self.ingested)


def open_batches(services: Services) -> list[tuple[int, str]]:
    """``(row id, provider id)`` of every batch the provider is still working on, oldest first."""
    return [(b.id, b.provider_batch_id) for b in batches.open_batches(services.engine)]


def _claim_for_ingest(services: Services, batch_id: int) -> bool:
    # A function of its own: the crash campaign kills a collector right after it took a batch's lease.
    now = datetime.now(UTC)
    lease_seconds = services.settings.lease_seconds
    return batches.take_lease(
        services.engine, batch_id, services.worker, status=BatchStatus.ENDED, lease_seconds=lease_seconds, now=now
    )


def poll_open_batches(services: Services, report: CollectReport | None = None) -> CollectReport:
    """Poll every open batch once and record what the API says (no ingesting)."""
    report = report or CollectReport()
    # A run whose process died stays `running` until someone looks: every collect does (nightbatch.runs).
    closed = close_interrupted_runs(services.engine, stale_after=stale_after(services.settings))
    report.closed_runs = [c.describe() for c in closed]
    for line in report.closed_runs:
        log.warning(line)
    for batch in batches.open_batches(services.engine):
        batch_id, provider_id = batch.id, batch.provider_batch_id
        try:
            info = services.client.retrieve_batch(provider_id)
        except ProviderError as exc:
            if not_visible_yet(exc, batch.submitted_at):
                report.not_yet_visible += 1  # the API's transient 404 right after a create: not gone
                report.still_open += 1
                continue
            report.errors.append(f"batch {batch_id} ({provider_id}): {exc}")
            continue
        report.polled += 1
        batches.record_polled(services.engine, batch_id, info)
        c = info.counts
        report.progress[batch_id] = {"total": c.total, "done": c.total - c.processing}
        if info.processing_status != "ended":
            report.still_open += 1
    return report


def ended_batches(services: Services) -> list[int]:
    """Ended batches waiting for their ingest, oldest first (calibration batches are ingested by their calibration)."""
    return batches.ended_batches(services.engine)


def ingest_one(services: Services, batch_id: int) -> IngestReport | None:
    """Ingest one ended batch under its lease; None when another collector holds it.

    A :class:`ProviderError` releases the lease and propagates, so the caller may retry.
    """
    if not _claim_for_ingest(services, batch_id):
        return None
    try:
        return ingest_batch(services, batch_id)
    except ProviderError:
        batches.release_lease(services.engine, batch_id)
        raise


def collect_step(services: Services) -> CollectReport:
    """Poll every open batch once and ingest every ended, not yet ingested batch."""
    report = poll_open_batches(services)
    for batch_id in ended_batches(services):
        try:
            ingested = ingest_one(services, batch_id)
        except ProviderError as exc:
            report.errors.append(f"batch {batch_id}: ingest failed, will retry: {exc}")
            continue
        if ingested is not None:
            report.ingested.append(ingested)
    return report
