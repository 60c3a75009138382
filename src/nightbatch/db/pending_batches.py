"""Creating batch rows and settling their create: the ``pending`` row a submit writes before ``create``,
what becomes of it (``record_created``, ``mark_create_failed``, a reconciler's ``adopt``), the reconciler's
reads, and the ``orphan`` row for a provider batch of ours that no row names.

Where these transitions sit among the row's states, and how the lease (``claimed_by``/``claimed_at``) that
guards them is handed over, is drawn in :mod:`nightbatch.db.batches`. Why the submitter's order of effects
makes a crash at any point safe is told in :mod:`nightbatch.submit.submitter`; how an unconfirmed create is
proven ours in :mod:`nightbatch.submit.reconcile`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from nightbatch.db.batches import ProviderBatch, lease_lapsed
from nightbatch.db.cache_entries import claim_pilot, link_pilot
from nightbatch.db.models import Batch, BatchStatus, CacheRole, UsagePurpose
from nightbatch.db.task_links import link_claimed_tasks, mark_batch_submitted, requeue_unsent

__all__ = [
    "PendingBatch",
    "PendingRequest",
    "StaleRow",
    "adopt",
    "given_up_since",
    "insert_orphan",
    "insert_pending",
    "is_recorded",
    "known_provider_ids",
    "mark_create_failed",
    "record_created",
    "set_manifest_uri",
    "stale_pending",
]

log = logging.getLogger(__name__)


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
class StaleRow:
    """A row the reconciler looks at: a pending row whose lease lapsed, or one given up."""

    id: int
    created_at: datetime
    request_count: int
    model: str


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
        if taken.rowcount != 1:
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


# -- the reconciler's reads ----------------------------------------------------------------------------


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
    return _stale_rows(engine, col(Batch.status) == BatchStatus.PENDING, lease_lapsed(now, lease_seconds))


def given_up_since(engine: Engine, since: datetime) -> list[StaleRow]:
    """Rows made since ``since`` that ended ``create_failed`` (a create of theirs may still land late)."""
    return _stale_rows(engine, col(Batch.status) == BatchStatus.CREATE_FAILED, col(Batch.created_at) >= since)
