"""The batch row's state machine: the map of its states, the lease that hands a row over, and the
transitions while the provider holds the batch.

States, and the function that makes each transition (in this module unless its module is named)::

    (insert_pending) ─▶ pending ─record_created (create accepted)─────▶ in_progress
                          │  └─mark_create_failed (create refused)─────▶ create_failed   (tasks back to queued)
                          └─outcome unknown (timeout, 5xx, crash): stays pending until its lease lapses;
                            a reconciler takes it (take_lease), then
                               found at the provider, proven ours ─adopt─▶ in_progress
                               not found ─mark_create_failed─▶ create_failed

    in_progress ─mark_canceling (a user's cancel, a deadline)─▶ canceling
    in_progress, canceling ─record_polled (what the provider says)─▶ ended
    ended ─take_lease, then the ingest transaction (nightbatch.collect.ingest)─mark_ingested─▶ ingested
           (release_lease when the ingest fails and will be retried)
    (insert_orphan) ─▶ a row of purpose ``orphan`` for a provider batch of ours that no row names

Creating rows and settling their create (``insert_pending``, ``record_created``, ``adopt``,
``mark_create_failed``, ``insert_orphan``, and the reconciler's reads) is :mod:`nightbatch.db.pending_batches`;
what ingest reads of a row and writes to it in its own transaction (``mark_ingested``,
``record_results_uri``) is :mod:`nightbatch.db.ingest_batches`. Here: the provider-side transitions of a
created batch, the lists of rows the collector polls and ingests, and the lease.

Task states on the submit path (the task side lives in :mod:`nightbatch.db.task_links`): ``claimed`` ─(linked
by :func:`~nightbatch.db.pending_batches.insert_pending`)─▶ ``claimed`` with ``batch_id``
─(:func:`~nightbatch.db.pending_batches.record_created`)─▶ ``submitted``, which is when the task's
``attempts`` goes up (see :mod:`nightbatch.queue.claim` for why not at claim).

**Leases.** ``claimed_by``/``claimed_at`` on a row say who may move it on: the submitting worker from
``insert_pending`` until ``record_created`` or ``mark_create_failed``; a reconciler that took a lapsed
pending row; a collector ingesting an ended row. :func:`take_lease` is the one compare-and-set that hands a
row over, so two workers never act on one row at once.

Why the submitter's order of effects makes a crash at any point safe is told in
:mod:`nightbatch.submit.submitter`; how an unconfirmed create is proven ours in :mod:`nightbatch.submit.reconcile`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, Engine, or_, select, update
from sqlmodel import col

from nightbatch.db.models import Batch, BatchStatus, UsagePurpose
from nightbatch.db.task_links import flag_user_canceled

__all__ = [
    "OPEN",
    "OpenBatch",
    "ProviderBatch",
    "ended_batches",
    "mark_canceling",
    "open_batches",
    "record_polled",
    "release_lease",
    "take_lease",
]

OPEN = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELING)
"""States in which the provider is still working on a batch: polled until it ends."""
_INGESTED_HERE = (UsagePurpose.TASK, UsagePurpose.ORPHAN)  # calibration batches are ingested by their calibration


class ProviderCounts(Protocol):
    """A provider batch's request counts (:class:`nightbatch.claude.RequestCounts` is one)."""

    @property
    def processing(self) -> int: ...
    @property
    def succeeded(self) -> int: ...
    @property
    def errored(self) -> int: ...
    @property
    def canceled(self) -> int: ...
    @property
    def expired(self) -> int: ...
    @property
    def total(self) -> int: ...


class ProviderBatch(Protocol):
    """What the provider says about one batch, as far as its row records it (:class:`nightbatch.claude.BatchInfo`)."""

    @property
    def id(self) -> str: ...
    @property
    def processing_status(self) -> str: ...
    @property
    def counts(self) -> ProviderCounts: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def ended_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class OpenBatch:
    """A batch the provider is still working on."""

    id: int
    provider_batch_id: str
    submitted_at: datetime | None


def lease_lapsed(now: datetime, lease_seconds: int) -> ColumnElement[bool]:
    """The condition "the row's lease lapsed, or it has none": who may take it (also the reconciler's
    :func:`nightbatch.db.pending_batches.stale_pending`)."""
    cutoff = now - timedelta(seconds=lease_seconds)
    return or_(col(Batch.claimed_at).is_(None), col(Batch.claimed_at) < cutoff)


# -- the lease -----------------------------------------------------------------------------------------


def take_lease(
    engine: Engine, batch_id: int, worker: str, *, status: BatchStatus, lease_seconds: int, now: datetime
) -> bool:
    """Lease the row to ``worker`` if it is in ``status`` and its lease lapsed (or it has none): the one
    compare-and-set that hands a row over. False when another worker holds it or the row moved on."""
    with engine.begin() as conn:
        result = conn.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id, col(Batch.status) == status, lease_lapsed(now, lease_seconds))
            .values(claimed_by=worker, claimed_at=now)
        )
    return bool(result.rowcount)


def release_lease(engine: Engine, batch_id: int) -> None:
    """Give the row's lease up (an ingest that failed and will be retried)."""
    with engine.begin() as conn:
        conn.execute(update(Batch).where(col(Batch.id) == batch_id).values(claimed_by=None, claimed_at=None))


# -- transitions while the provider holds the batch ----------------------------------------------------


def record_polled(engine: Engine, batch_id: int, info: ProviderBatch) -> None:
    """An open row (``in_progress``, ``canceling``) takes what the provider says: its status and counts."""
    c = info.counts
    with engine.begin() as conn:
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


def mark_canceling(
    engine: Engine,
    batch_id: int,
    note: str,
    *,
    status: BatchStatus = BatchStatus.CANCELING,
    user_canceled_at: datetime | None = None,
) -> None:
    """``in_progress`` ─▶ ``status`` (``canceling``, or what the cancel answered), with ``note`` (who,
    when, why) in the row's ``error``. With ``user_canceled_at``, a user's cancel: the batch's tasks end
    ``canceled`` when it is ingested (otherwise they are retried), in the same transaction."""
    with engine.begin() as conn:
        conn.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id, col(Batch.status) == BatchStatus.IN_PROGRESS)
            .values(status=status, error=note)
        )
        if user_canceled_at is not None:
            flag_user_canceled(conn, batch_id, now=user_canceled_at)


# -- the rows the collector works on -------------------------------------------------------------------


def open_batches(engine: Engine) -> list[OpenBatch]:
    """Rows the provider is still working on (``in_progress``, ``canceling``), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Batch.id), col(Batch.provider_batch_id), col(Batch.submitted_at))
            .where(col(Batch.status).in_(OPEN))
            .order_by(col(Batch.id))
        ).all()
    return [OpenBatch(r.id, r.provider_batch_id, r.submitted_at) for r in rows]


def ended_batches(engine: Engine) -> list[int]:
    """Ended task and orphan rows waiting for their ingest, oldest first (calibration batches are ingested
    by the calibration that made them)."""
    with engine.connect() as conn:
        ended = conn.execute(
            select(col(Batch.id))
            .where(col(Batch.status) == BatchStatus.ENDED, col(Batch.purpose).in_(_INGESTED_HERE))
            .order_by(col(Batch.id))
        ).all()
    return [batch_id for (batch_id,) in ended]
