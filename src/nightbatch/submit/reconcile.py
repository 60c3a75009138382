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
from nightbatch.submit.submitter import mark_create_failed, record_created

__all__ = ["ReconcileOutcome", "reconcile_pending"]

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=10)


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


def reconcile_pending(
    engine: Engine, client: ClaudeClient, *, worker: str, lease_seconds: int, now: datetime | None = None
) -> list[ReconcileOutcome]:
    """Resolve every pending batch whose lease has lapsed. Safe to run from several workers at once."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=lease_seconds)
    with Session(engine) as session:
        stale = session.execute(
            select(col(Batch.id), col(Batch.created_at), col(Batch.request_count))
            .where(
                col(Batch.status) == BatchStatus.PENDING,
                or_(col(Batch.claimed_at).is_(None), col(Batch.claimed_at) < cutoff),
            )
            .order_by(col(Batch.id))
        ).all()
    outcomes: list[ReconcileOutcome] = []
    if not stale:
        return outcomes
    known = _known_provider_ids(engine)
    earliest = min(row.created_at for row in stale) - CLOCK_SKEW
    candidates = sorted(
        (b for b in client.list_batches(created_after=earliest) if b.id not in known),
        key=lambda b: b.created_at,
    )
    for row in stale:
        if not _take_lease(engine, row.id, worker, cutoff, now):
            continue  # another worker is on it
        match = next(
            (
                b
                for b in candidates
                if b.id not in known
                and b.counts.total == row.request_count
                and b.created_at >= row.created_at - CLOCK_SKEW
            ),
            None,
        )
        if match is None:
            mark_create_failed(
                engine, row.id, "create was never confirmed and no matching batch exists at the provider"
            )
            outcomes.append(ReconcileOutcome(row.id, None, False))
            continue
        known.add(match.id)
        canceled = False
        info = match
        if match.processing_status == "in_progress":
            try:
                info = client.cancel_batch(match.id)
                canceled = True
            except ProviderError as exc:
                log.warning("batch %s: could not cancel unrecorded %s: %s", row.id, match.id, exc)
        record_created(engine, row.id, info, worker=worker)
        with Session(engine) as session:
            note = f"created as {match.id} but not recorded (worker died around create); recovered"
            session.execute(update(Batch).where(col(Batch.id) == row.id).values(error=note))
            session.commit()
        outcome = ReconcileOutcome(row.id, info, canceled)
        log.warning(outcome.describe())
        outcomes.append(outcome)
    return outcomes
