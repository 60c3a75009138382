"""The batch row's state machine: every write to ``batch`` rows, as named transitions, and the reads around them.

States, and the function here that makes each transition::

    (insert_pending) ─▶ pending ─record_created (create accepted)─────▶ in_progress
                          │  └─mark_create_failed (create refused)─────▶ create_failed   (tasks back to queued)
                          └─outcome unknown (timeout, 5xx, crash): stays pending until its lease lapses;
                            a reconciler takes it (take_lease), then
                               found at the provider, proven ours ─adopt─▶ in_progress
                               not found ─mark_create_failed─▶ create_failed

    in_progress ─mark_canceling (a user's cancel, a deadline)─▶ canceling
    in_progress, canceling ─record_polled (what the provider says)─▶ ended
    ended ─take_lease, then the ingest transaction (nightbatch.collect.ingest)─▶ ingested
           (release_lease when the ingest fails and will be retried)
    (insert_orphan) ─▶ a row of purpose ``orphan`` for a provider batch of ours that no row names

Task states on the submit path (the task side lives in :mod:`nightbatch.db.tasks`): ``claimed`` ─(linked
by :func:`insert_pending`)─▶ ``claimed`` with ``batch_id`` ─(:func:`record_created`)─▶ ``submitted``, which
is when the task's ``attempts`` goes up (see :mod:`nightbatch.queue.claim` for why not at claim).

**Leases.** ``claimed_by``/``claimed_at`` on a row say who may move it on: the submitting worker from
:func:`insert_pending` until :func:`record_created` or :func:`mark_create_failed`; a reconciler that took
a lapsed pending row; a collector ingesting an ended row. :func:`take_lease` is the one compare-and-set
that hands a row over, so two workers never act on one row at once.

Why the submitter's order of effects makes a crash at any point safe is told in
:mod:`nightbatch.submit.submitter`; how an unconfirmed create is proven ours in :mod:`nightbatch.submit.reconcile`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, Connection, CursorResult, Engine, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from nightbatch.db.cache_entries import claim_pilot, link_pilot
from nightbatch.db.models import Batch, BatchStatus, CacheRole, UsagePurpose
from nightbatch.db.task_links import link_claimed_tasks
from nightbatch.db.tasks import flag_user_canceled, mark_batch_submitted, requeue_unsent

__all__ = [
    "OPEN",
    "OpenBatch",
    "PendingBatch",
    "PendingRequest",
    "ProviderBatch",
    "StaleRow",
    "adopt",
    "calibration_batches",
    "ended_batches",
    "given_up_since",
    "insert_orphan",
    "insert_pending",
    "is_recorded",
    "known_provider_ids",
    "load_batch",
    "mark_canceling",
    "mark_create_failed",
    "mark_ingested",
    "open_batches",
    "record_created",
    "record_polled",
    "record_results_uri",
    "release_lease",
    "set_manifest_uri",
    "stale_pending",
    "take_lease",
]

log = logging.getLogger(__name__)

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
class PendingBatch:
    """What a pending row records before ``create`` (see :func:`insert_pending`)."""

    model: str
    prefix_hash: str
    worker: str
    cache_ttl: str | None = None
    cache_decision: dict[str, object] | None = None
    run_id: int | None = None
    purpose: UsagePurpose = UsagePurpose.TASK
    cache_role: CacheRole | None = None
    calibration_id: int | None = None
    pilot_prefix_tokens: int = 0  # a pilot's prefix size, kept with its group's slot


@dataclass(frozen=True)
class PendingRequest:
    """One request of a pending batch, its custom_id bound to the row."""

    custom_id: str
    model: str
    task_id: int | None  # the task it links; None for a probe or a shadow request (its task stays where it is)


@dataclass(frozen=True)
class OpenBatch:
    """A batch the provider is still working on."""

    id: int
    provider_batch_id: str
    submitted_at: datetime | None


@dataclass(frozen=True)
class StaleRow:
    """A row the reconciler looks at: a pending row whose lease lapsed, or one given up."""

    id: int
    created_at: datetime
    request_count: int
    model: str


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _lapsed(now: datetime, lease_seconds: int) -> ColumnElement[bool]:
    cutoff = now - timedelta(seconds=lease_seconds)
    return or_(col(Batch.claimed_at).is_(None), col(Batch.claimed_at) < cutoff)


# -- transitions ---------------------------------------------------------------------------------------


def insert_pending(
    engine: Engine,
    pending: PendingBatch,
    *,
    now: datetime,
    bind: Callable[[int], Sequence[PendingRequest]],
    payload_bytes: Callable[[Sequence[int]], int],
) -> int | None:
    """─▶ ``pending``: the row, leased to ``pending.worker``, and its task links, in one transaction.

    ``bind(row id)`` gives the batch's requests with their custom_ids bound to the new row. Each task is
    linked only if the worker still holds its claim (compare-and-set on ``claimed_by``); a request whose
    task's claim was lost is left out, and ``payload_bytes(kept positions)`` gives the size of what is
    left. Returns the row id; None (nothing written) when no request is left.

    A pilot (``cache_role = pilot``) also takes its group's pilot slot in the same transaction
    (:func:`nightbatch.db.cache_entries.claim_pilot`): the batch row and the group's waiting state exist
    together or not at all, and a second worker's pilot for the same group is not written (None).
    """
    pilot = pending.cache_role == CacheRole.PILOT
    with Session(engine) as session:
        if pilot and pending.cache_ttl is not None:
            try:
                taken = claim_pilot(session.connection(), pending.model, pending.prefix_hash, ttl=pending.cache_ttl,
                                    prefix_tokens=pending.pilot_prefix_tokens, now=now)  # fmt: skip
            except IntegrityError:
                taken = False
            if not taken:
                session.rollback()
                log.info("group %s/%s: another pilot is out; this one is not sent", pending.model, pending.prefix_hash)
                return None
        batch = Batch(
            model=pending.model,
            status=BatchStatus.PENDING,
            prefix_hash=pending.prefix_hash,
            cache_ttl=pending.cache_ttl,
            cache_decision=pending.cache_decision,
            run_id=pending.run_id,
            claimed_by=pending.worker,
            claimed_at=now,
            created_at=now,
            purpose=pending.purpose,
            cache_role=pending.cache_role,
            calibration_id=pending.calibration_id,
        )
        session.add(batch)
        session.flush()
        assert batch.id is not None
        requests = bind(batch.id)
        conn = session.connection()
        if pilot:
            link_pilot(conn, pending.model, pending.prefix_hash, batch.id)
        # Many tasks per statement, not one round trip per task (issue 20: db/task_links.py).
        links = [(r.task_id, r.custom_id, r.model) for r in requests if r.task_id is not None]
        linked = link_claimed_tasks(conn, batch_id=batch.id, worker=pending.worker, links=links, now=now)
        kept: list[int] = []
        for position, request in enumerate(requests):
            if request.task_id is None or request.task_id in linked:
                kept.append(position)
            else:
                log.warning("task %s: claim lost to another worker; left out of batch %s", request.task_id, batch.id)
        if not kept:
            session.rollback()
            return None
        batch.payload_bytes = payload_bytes(kept)
        batch.request_count = len(kept)
        batch.processing_count = len(kept)
        session.commit()
        return batch.id


def set_manifest_uri(engine: Engine, batch_id: int, uri: str) -> None:
    """Where the exact request manifest of the row was archived (before anything is sent)."""
    with engine.begin() as conn:
        conn.execute(update(Batch).where(col(Batch.id) == batch_id).values(manifest_uri=uri))


def take_lease(
    engine: Engine, batch_id: int, worker: str, *, status: BatchStatus, lease_seconds: int, now: datetime
) -> bool:
    """Lease the row to ``worker`` if it is in ``status`` and its lease lapsed (or it has none): the one
    compare-and-set that hands a row over. False when another worker holds it or the row moved on."""
    with engine.begin() as conn:
        result = conn.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id, col(Batch.status) == status, _lapsed(now, lease_seconds))
            .values(claimed_by=worker, claimed_at=now)
        )
    return bool(_rowcount(result))


def release_lease(engine: Engine, batch_id: int) -> None:
    """Give the row's lease up (an ingest that failed and will be retried)."""
    with engine.begin() as conn:
        conn.execute(update(Batch).where(col(Batch.id) == batch_id).values(claimed_by=None, claimed_at=None))


def record_created(engine: Engine, batch_id: int, info: ProviderBatch, *, worker: str) -> bool:
    """``pending`` ─▶ what the provider says (``in_progress``): the provider id, and the tasks move to
    ``submitted`` (attempt counted), in one transaction.

    Guarded: only while the row is still ``pending`` and leased by ``worker``. A create that outlived its
    lease may find its row given up by a reconciler (tasks re-queued); then it returns False and the
    caller must deal with the batch it just created (see :func:`nightbatch.submit.submitter.record_orphan`).
    """
    now = datetime.now(UTC)
    with engine.connect() as conn:
        taken = conn.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id, col(Batch.status) == BatchStatus.PENDING, col(Batch.claimed_by) == worker)
            .values(
                provider_batch_id=info.id,
                status=BatchStatus(info.processing_status),
                submitted_at=info.created_at,
                expires_at=info.expires_at,
                claimed_by=None,
                claimed_at=None,
            )
        )
        if _rowcount(taken) != 1:
            conn.rollback()
            return False
        mark_batch_submitted(conn, batch_id, now=now)
        conn.commit()
    return True


def adopt(engine: Engine, batch_id: int, info: ProviderBatch, *, worker: str, note: str) -> bool:
    """A reconciler's ``pending`` ─▶ ``in_progress``: the unrecorded batch proven to be this row's is
    recorded as if its create had returned (:func:`record_created`, under the reconciler's lease), and
    the row says so in its ``error`` (``note``). False when the row was not the reconciler's any more."""
    created = record_created(engine, batch_id, info, worker=worker)
    with engine.begin() as conn:
        conn.execute(update(Batch).where(col(Batch.id) == batch_id).values(error=note))
    return created


def mark_create_failed(engine: Engine, batch_id: int, error: str, *, worker_died: bool = False) -> None:
    """─▶ ``create_failed``: the batch was never created. Records why and puts its tasks back in the queue,
    unharmed, in one transaction.

    No attempt was counted (that happens when a create is accepted). The claim is taken back from the
    tasks' ``claims`` unless ``worker_died`` (the reconciler giving up a dead worker's row): those deaths
    count towards the poison rule (:mod:`nightbatch.queue.claim`).
    """
    with engine.begin() as conn:
        conn.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id)
            .values(status=BatchStatus.CREATE_FAILED, error=error[:2000], claimed_by=None, claimed_at=None)
        )
        requeue_unsent(conn, batch_id, worker_died=worker_died, now=datetime.now(UTC))


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


def insert_orphan(engine: Engine, info: ProviderBatch, *, model: str, reason: str) -> int | None:
    """A row (purpose ``orphan``) for a provider batch of ours that no row names, so that whatever it
    billed lands in the ledger. None when the provider batch is recorded already (another worker's row)."""
    with Session(engine) as session:
        batch = Batch(
            provider_batch_id=info.id,
            model=model,
            status=BatchStatus(info.processing_status),
            request_count=info.counts.total,
            processing_count=info.counts.processing,
            submitted_at=info.created_at,
            expires_at=info.expires_at,
            error=reason,
            purpose=UsagePurpose.ORPHAN,
        )
        session.add(batch)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return None
        assert batch.id is not None
        return batch.id


# -- reads ---------------------------------------------------------------------------------------------


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


def is_recorded(engine: Engine, provider_batch_id: str) -> bool:
    """Whether some row names this provider batch."""
    with engine.connect() as conn:
        found = conn.execute(select(col(Batch.id)).where(col(Batch.provider_batch_id) == provider_batch_id)).first()
    return found is not None


def known_provider_ids(engine: Engine) -> set[str]:
    """Every provider batch id some row names."""
    with engine.connect() as conn:
        rows = conn.execute(select(col(Batch.provider_batch_id)).where(col(Batch.provider_batch_id).is_not(None)))
        return {r[0] for r in rows}


def _stale_rows(engine: Engine, *conditions: Any) -> list[StaleRow]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Batch.id), col(Batch.created_at), col(Batch.request_count), col(Batch.model))
            .where(*conditions)
            .order_by(col(Batch.id))
        ).all()
    return [StaleRow(r.id, r.created_at, r.request_count, r.model) for r in rows]


def stale_pending(engine: Engine, *, lease_seconds: int, now: datetime) -> list[StaleRow]:
    """Pending rows whose lease lapsed: their worker died (or lost its connection) around ``create``."""
    return _stale_rows(engine, col(Batch.status) == BatchStatus.PENDING, _lapsed(now, lease_seconds))


def given_up_since(engine: Engine, since: datetime) -> list[StaleRow]:
    """Rows made since ``since`` that ended ``create_failed`` (a create of theirs may still land late)."""
    return _stale_rows(engine, col(Batch.status) == BatchStatus.CREATE_FAILED, col(Batch.created_at) >= since)


# Ingest's transitions and reads (nightbatch.collect.ingest, nightbatch.calibrate).


def load_batch(engine: Engine, batch_id: int) -> Batch | None:
    """The batch row as it is now (a detached snapshot), or None."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Batch, batch_id)


def calibration_batches(engine: Engine, calibration_id: int) -> list[Batch]:
    """The batches a calibration sent (one or more per candidate model), oldest first."""
    with Session(engine, expire_on_commit=False) as session:
        query = select(Batch).where(col(Batch.calibration_id) == calibration_id).order_by(col(Batch.id))
        return list(session.execute(query).scalars())


def record_results_uri(conn: Connection, batch_id: int, uri: str) -> None:
    """Where the batch's results are archived: a second ingest reads them there, not from the provider."""
    conn.execute(update(Batch).where(col(Batch.id) == batch_id).values(results_uri=uri))


def mark_ingested(conn: Connection, batch_id: int, now: datetime) -> None:
    """``ended -> ingested``, its ingest lease given up, in the ingest's own transaction."""
    conn.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id)
        .values(status=BatchStatus.INGESTED, ingested_at=now, claimed_by=None, claimed_at=None)
    )
