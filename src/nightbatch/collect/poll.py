"""The collect step: poll open batches, then ingest the ended ones.

Polling never waits: each call looks once at every open batch, records what the provider says and
returns, so it can run every few minutes from a schedule (and concurrently with submitting) without
holding a worker for a batch's 24 hours. Ingesting takes a lease on the batch row, so two collectors
never ingest the same batch at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlmodel import col

from nightbatch.claude import BatchInfo
from nightbatch.claude.client import not_visible_yet
from nightbatch.collect.ingest import IngestReport, ingest_batch
from nightbatch.db.models import Batch, BatchStatus
from nightbatch.errors import ProviderError
from nightbatch.runs import close_interrupted_runs, stale_after
from nightbatch.services import Services

__all__ = ["CollectReport", "collect_step", "ended_batches", "ingest_one", "open_batches", "poll_open_batches"]

log = logging.getLogger(__name__)

OPEN = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELING)


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


def _record(services: Services, batch_id: int, info: BatchInfo) -> None:
    c = info.counts
    with services.engine.begin() as conn:
        conn.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id, col(Batch.status).in_(OPEN))
            .values(
                status=BatchStatus(info.processing_status),
                processing_count=c.processing,
                succeeded_count=c.succeeded,
                errored_count=c.errored,
                canceled_count=c.canceled,
                expired_count=c.expired,
                ended_at=info.ended_at,
                expires_at=info.expires_at,
            )
        )


def open_batches(services: Services) -> list[tuple[int, str]]:
    return [(batch_id, provider_id) for batch_id, provider_id, _ in _open_batches(services)]


def _open_batches(services: Services) -> list[tuple[int, str, datetime | None]]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(col(Batch.id), col(Batch.provider_batch_id), col(Batch.submitted_at))
            .where(col(Batch.status).in_(OPEN))
            .order_by(col(Batch.id))
        ).all()
    return [(r.id, r.provider_batch_id, r.submitted_at) for r in rows]


def _claim_for_ingest(services: Services, batch_id: int) -> bool:
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=services.settings.lease_seconds)
    with services.engine.begin() as conn:
        result = conn.execute(
            update(Batch)
            .where(
                col(Batch.id) == batch_id,
                col(Batch.status) == BatchStatus.ENDED,
                or_(col(Batch.claimed_at).is_(None), col(Batch.claimed_at) < cutoff),
            )
            .values(claimed_by=services.worker, claimed_at=now)
        )
    return bool(result.rowcount)


def poll_open_batches(services: Services, report: CollectReport | None = None) -> CollectReport:
    """Poll every open batch once and record what the API says (no ingesting)."""
    report = report or CollectReport()
    # A run whose process died stays `running` until someone looks: every collect does (nightbatch.runs).
    closed = close_interrupted_runs(services.engine, stale_after=stale_after(services.settings))
    report.closed_runs = [c.describe() for c in closed]
    for line in report.closed_runs:
        log.warning(line)
    for batch_id, provider_id, submitted_at in _open_batches(services):
        try:
            info = services.client.retrieve_batch(provider_id)
        except ProviderError as exc:
            if not_visible_yet(exc, submitted_at):
                report.not_yet_visible += 1  # the API's transient 404 right after a create: not gone
                report.still_open += 1
                continue
            report.errors.append(f"batch {batch_id} ({provider_id}): {exc}")
            continue
        report.polled += 1
        _record(services, batch_id, info)
        c = info.counts
        report.progress[batch_id] = {"total": c.total, "done": c.total - c.processing}
        if info.processing_status != "ended":
            report.still_open += 1
    return report


def ended_batches(services: Services) -> list[int]:
    """Ended batches waiting for their ingest, oldest first."""
    with services.engine.connect() as conn:
        # Calibration batches are ingested by the calibration that made them, not here.
        ended = conn.execute(
            select(col(Batch.id))
            .where(col(Batch.status) == BatchStatus.ENDED, col(Batch.purpose).in_(["task", "orphan"]))
            .order_by(col(Batch.id))
        ).all()
    return [batch_id for (batch_id,) in ended]


def ingest_one(services: Services, batch_id: int) -> IngestReport | None:
    """Ingest one ended batch under its lease; None when another collector holds it.

    A :class:`ProviderError` releases the lease and propagates, so the caller may retry.
    """
    if not _claim_for_ingest(services, batch_id):
        return None
    try:
        return ingest_batch(services, batch_id)
    except ProviderError:
        with services.engine.begin() as conn:
            conn.execute(update(Batch).where(col(Batch.id) == batch_id).values(claimed_by=None, claimed_at=None))
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
