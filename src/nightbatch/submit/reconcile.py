"""Reconciling batches whose creation was never confirmed (see the state diagram in ``submitter``).

A ``pending`` row whose lease has lapsed belongs to a worker that died (or lost its connection) around
``create``. The provider offers no client token on batches, so we look for a batch we have not recorded,
created no earlier than the row (less a clock-skew allowance), with the same number of requests.

- Found: the batch was created but not recorded. We record it (so nothing is paid twice), report it
  on the row's ``error`` field and in the returned outcome, and cancel it if it is still running, as we
  cannot prove it is ours; whatever it finished is ingested normally and the rest is re-queued.
- Not found: the create never took effect; the tasks go back to the queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, or_, select, update
from sqlmodel import Session, col

from nightbatch.claude import BatchInfo, ClaudeClient
from nightbatch.db.models import Batch, BatchStatus
from nightbatch.errors import ProviderError
from nightbatch.submit.submitter import mark_create_failed, record_created, record_orphan

__all__ = ["ReconcileOutcome", "reconcile_pending"]

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=10)
# How far back batches given up by a reconciler are watched for a create that landed late.
ORPHAN_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class ReconcileOutcome:
    batch_id: int
    found: BatchInfo | None
    canceled: bool

    def describe(self) -> str:
        if self.found is None:
            return f"batch {self.batch_id}: create never took effect; its tasks were re-queued"
        action = "canceled, " if self.canceled else ""
        return f"batch {self.batch_id}: created as {self.found.id} but not recorded; recorded it, {action}ingesting"


def _take_lease(engine: Engine, batch_id: int, worker: str, cutoff: datetime, now: datetime) -> bool:
    with Session(engine) as session:
        result = session.execute(
            update(Batch)
            .where(
                col(Batch.id) == batch_id,
                col(Batch.status) == BatchStatus.PENDING,
                or_(col(Batch.claimed_at).is_(None), col(Batch.claimed_at) < cutoff),
            )
            .values(claimed_by=worker, claimed_at=now)
        )
        session.commit()
        return bool(cast(CursorResult[Any], result).rowcount)


def _known_provider_ids(engine: Engine) -> set[str]:
    with Session(engine) as session:
        rows = session.execute(select(col(Batch.provider_batch_id)).where(col(Batch.provider_batch_id).is_not(None)))
        return {r[0] for r in rows}


def _matches(batch: BatchInfo, row: Any) -> bool:
    return bool(batch.counts.total == row.request_count and batch.created_at >= row.created_at - CLOCK_SKEW)


def _rows(engine: Engine, *conditions: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(col(Batch.id), col(Batch.created_at), col(Batch.request_count), col(Batch.model))
                .where(*conditions)
                .order_by(col(Batch.id))
            ).all()
        )


def _adopt(engine: Engine, client: ClaudeClient, row_id: int, match: BatchInfo, worker: str) -> ReconcileOutcome:
    canceled = False
    info = match
    if match.processing_status == "in_progress":
        try:
            info = client.cancel_batch(match.id)
            canceled = True
        except ProviderError as exc:
            log.warning("batch %s: could not cancel unrecorded %s: %s", row_id, match.id, exc)
    record_created(engine, row_id, info, worker=worker)
    with Session(engine) as session:
        note = f"created as {match.id} but not recorded (worker died around create); recovered"
        session.execute(update(Batch).where(col(Batch.id) == row_id).values(error=note))
        session.commit()
    return ReconcileOutcome(row_id, info, canceled)


def reconcile_pending(
    engine: Engine, client: ClaudeClient, *, worker: str, lease_seconds: int, now: datetime | None = None
) -> list[ReconcileOutcome]:
    """Resolve every pending batch whose lease has lapsed. Safe to run from several workers at once.

    A provider batch is adopted by a row only when the match is unique both ways (one candidate for the
    row, one row for the candidate); equal-sized unconfirmed creates are common, and adopting the wrong
    one would bill a batch nobody ingests. Ambiguous candidates are canceled and recorded as orphans (their
    billed results still reach the ledger) and their rows are given up. Batches that turn up later for a
    row already given up — a create that outlived its lease — are recorded as orphans the same way.
    Candidates that could belong to a live worker's create (a pending row with a fresh lease) are left
    alone.
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=lease_seconds)
    lapsed = or_(col(Batch.claimed_at).is_(None), col(Batch.claimed_at) < cutoff)
    stale = _rows(engine, col(Batch.status) == BatchStatus.PENDING, lapsed)
    live = _rows(engine, col(Batch.status) == BatchStatus.PENDING, col(Batch.claimed_at) >= cutoff)
    given_up = _rows(
        engine,
        col(Batch.status) == BatchStatus.CREATE_FAILED,
        col(Batch.purpose) == "task",
        col(Batch.created_at) >= now - ORPHAN_WINDOW,
    )
    outcomes: list[ReconcileOutcome] = []
    if not stale and not given_up:
        return outcomes
    known = _known_provider_ids(engine)
    earliest = min(row.created_at for row in [*stale, *given_up]) - CLOCK_SKEW
    candidates = [b for b in client.list_batches(created_after=earliest) if b.id not in known]
    candidates = [b for b in candidates if not any(_matches(b, row) for row in live)]
    rows_for = {b.id: [row for row in stale if _matches(b, row)] for b in candidates}
    orphans: dict[str, BatchInfo] = {}
    for row in stale:
        if not _take_lease(engine, row.id, worker, cutoff, now):
            continue  # another worker is on it
        matching = [b for b in candidates if _matches(b, row)]
        unique = [b for b in matching if len(rows_for[b.id]) == 1]
        if len(matching) == 1 and len(unique) == 1:
            outcome = _adopt(engine, client, row.id, unique[0], worker)
            known.add(unique[0].id)
        else:
            for b in matching:
                orphans[b.id] = b
            reason = (
                "create was never confirmed and no matching batch exists at the provider"
                if not matching
                else f"create unconfirmed and {len(matching)} provider batches could be it; all canceled as orphans"
            )
            mark_create_failed(engine, row.id, reason, worker_died=True)
            outcome = ReconcileOutcome(row.id, None, False)
        log.warning(outcome.describe())
        outcomes.append(outcome)
    for b in candidates:
        if b.id not in known and any(_matches(b, row) for row in given_up):
            orphans[b.id] = b
    for b in orphans.values():
        if b.id in known:
            continue
        model = next((row.model for row in [*stale, *given_up] if _matches(b, row)), "unknown")
        reason = "created without a record (an unconfirmed or late create); canceled, its cost booked as orphan"
        record_orphan(engine, client, b, model=model, reason=reason)
        known.add(b.id)
    return outcomes
