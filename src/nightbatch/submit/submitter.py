"""Submitting packed batches exactly once. The database is the source of truth.

Batch row states and transitions::

    pending ──create accepted──────────────────▶ in_progress ─▶ canceling ─▶ ended ─▶ ingested
       │  └─create refused (429/529/4xx)───────▶ create_failed   (tasks back to queued)
       └─outcome unknown (timeout, 5xx, crash)─▶ stays pending; reconciled once its lease lapses:
              found at the provider  ─▶ in_progress (adopted; canceled if still running; reported)
              not found              ─▶ create_failed (tasks back to queued)

Task states on this path: ``claimed`` ─(linked to a pending batch)─▶ ``claimed`` with ``batch_id`` ─
(create accepted)─▶ ``submitted``, which is when the task's ``attempts`` goes up (see
:mod:`nightbatch.queue.claim` for why not at claim). Collecting takes them on (:mod:`nightbatch.collect`).

The order of effects is what makes a crash at any point safe:

1. one transaction writes the ``pending`` batch row, binds every request's custom_id to that row and this
   installation (:mod:`nightbatch.custom_ids`) and links its tasks (``batch_id``, ``custom_id``);
2. the exact request manifest is archived to the object store and its key recorded on the row (if this
   fails, nothing was sent: the row becomes ``create_failed`` and its tasks are queued again at once);
3. ``create`` is called with SDK retries off (a retried create can make a second, billed batch);
4. one transaction records the provider id and moves the tasks to ``submitted``.

A worker killed between 3 and 4 leaves a ``pending`` row whose batch exists at the provider; the
reconciler (:mod:`nightbatch.submit.reconcile`) finds it by its request count and creation time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, case, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from nightbatch import custom_ids
from nightbatch.build.prefix import canonical_json
from nightbatch.build.requests import BuiltRequest
from nightbatch.claude import BatchInfo, ClaudeClient
from nightbatch.db.cache_entries import PILOT, claim_pilot, link_pilot
from nightbatch.db.installation import installation_id
from nightbatch.db.models import Batch, BatchStatus, CacheRole, Task, TaskStatus, UsagePurpose
from nightbatch.db.task_links import link_claimed_tasks
from nightbatch.errors import NightbatchError, ProviderError
from nightbatch.storage import ObjectStore
from nightbatch.submit.pack import PackedBatch

__all__ = ["FailedBeforeCreateError", "SubmitOutcome", "manifest_key", "submit_batch"]

log = logging.getLogger(__name__)


def manifest_key(batch_id: int, created: datetime) -> str:
    return f"manifests/date={created:%Y-%m-%d}/batch-{batch_id}.jsonl"


class FailedBeforeCreateError(NightbatchError):
    """A step before ``create`` failed (e.g. the manifest upload): nothing was sent and the tasks are queued again."""

    def __init__(self, batch_id: int, tasks: int, cause: BaseException) -> None:
        self.batch_id = batch_id
        self.tasks = tasks
        super().__init__(
            f"batch {batch_id} failed before create, nothing was sent; its {tasks} task(s) are back in the queue: "
            f"{cause}"
        )


@dataclass
class SubmitOutcome:
    """What happened to one packed batch."""

    batch_id: int
    provider_batch_id: str | None
    status: BatchStatus
    error: str | None = None
    task_ids: list[int] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def write_pending(
    engine: Engine,
    packed: PackedBatch,
    *,
    worker: str,
    run_id: int | None,
    cache_decision: dict[str, object] | None,
    purpose: UsagePurpose = UsagePurpose.TASK,
    cache_role: CacheRole | None = None,
    calibration_id: int | None = None,
) -> int | None:
    """Step 1: the pending batch row and its task links, in one transaction. Returns the row id.

    Each task is linked only if this worker still holds its claim (compare-and-set on ``claimed_by``): a
    task whose lease lapsed and was taken over is dropped from ``packed``, so it can never go out twice.
    Returns None when no task is left.

    A pilot (``cache_role="pilot"``) also takes its group's pilot slot in the same transaction
    (:func:`nightbatch.db.cache_entries.claim_pilot`): the batch row and the group's waiting state exist
    together or not at all, and a second worker's pilot for the same group is not written (None).
    """
    now = _now()
    installation = installation_id(engine)  # before the write transaction: it may insert on first use
    with Session(engine) as session:
        if cache_role == PILOT and packed.ttl is not None:
            try:
                taken = claim_pilot(session.connection(), packed.model, packed.prefix_hash, ttl=packed.ttl,
                                    prefix_tokens=_prefix_tokens(cache_decision), now=now)  # fmt: skip
            except IntegrityError:
                taken = False
            if not taken:
                session.rollback()
                log.info("group %s/%s: another pilot is out; this one is not sent", packed.model, packed.prefix_hash)
                return None
        batch = Batch(
            model=packed.model,
            status=BatchStatus.PENDING,
            prefix_hash=packed.prefix_hash,
            cache_ttl=packed.ttl,
            cache_decision=cache_decision,
            run_id=run_id,
            claimed_by=worker,
            claimed_at=now,
            created_at=now,
            purpose=purpose,
            cache_role=cache_role,
            calibration_id=calibration_id,
        )
        session.add(batch)
        session.flush()
        assert batch.id is not None
        # Every custom_id now names this row and this installation: what proves the batch ours later.
        bound = [
            replace(r, custom_id=custom_ids.bind(r.custom_id, row=batch.id, installation=installation))
            for r in packed.requests
        ]
        resized = any(len(a.custom_id) != len(b.custom_id) for a, b in zip(packed.requests, bound, strict=True))
        packed.requests = bound
        if resized:
            packed.recount()
        if cache_role == PILOT:
            link_pilot(session.connection(), packed.model, packed.prefix_hash, batch.id)

        # A probe (shadow, calibration) is not the task's own request: the task stays where it is.
        def own(request: BuiltRequest) -> bool:
            return purpose == UsagePurpose.TASK and not custom_ids.is_shadow(request.custom_id)

        # claimed_at=now: the task's lease is never older than its batch row's.
        links = [(r.task_id, r.custom_id) for r in packed.requests if own(r)]
        linked = link_claimed_tasks(
            session.connection(), batch_id=batch.id, worker=worker, model=packed.model, links=links, now=now
        )
        kept = []
        for request in packed.requests:
            if not own(request) or request.task_id in linked:
                kept.append(request)
            else:
                log.warning("task %s: claim lost to another worker; left out of batch %s", request.task_id, batch.id)
        if not kept:
            session.rollback()
            return None
        if len(kept) != len(packed.requests):
            packed.requests = kept
            packed.recount()
        batch.request_count = len(kept)
        batch.processing_count = len(kept)
        batch.payload_bytes = packed.payload_bytes
        session.commit()
        return batch.id


def _prefix_tokens(cache_decision: dict[str, object] | None) -> int:
    tokens = (cache_decision or {}).get("prefix_tokens")
    return tokens if isinstance(tokens, int) else 0


def archive_manifest(engine: Engine, store: ObjectStore, batch_id: int, packed: PackedBatch) -> str:
    """Step 2: the exact requests, one JSON line each, archived before anything is sent."""
    key = manifest_key(batch_id, _now())
    with store.writer(key, content_type="application/jsonl") as out:
        for request in packed.requests:
            out.write(request.entry_bytes(packed.ttl))
            out.write(b"\n")
    uri = store.uri(key)
    with Session(engine) as session:
        session.execute(update(Batch).where(col(Batch.id) == batch_id).values(manifest_uri=uri))
        session.commit()
    return uri


def record_created(engine: Engine, batch_id: int, info: BatchInfo, *, worker: str) -> bool:
    """Step 4: the provider id, and the tasks move to ``submitted``, in one transaction.

    Guarded: only while the row is still ``pending`` and leased by ``worker``. A create that outlived its
    lease may find its row given up by a reconciler (tasks re-queued); then it returns False and the
    caller must deal with the batch it just created (see :func:`record_orphan`).
    """
    now = _now()
    with Session(engine) as session:
        taken = session.execute(
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
        if cast(CursorResult[Any], taken).rowcount != 1:
            session.rollback()
            return False
        # The request was sent and accepted: this is where an attempt counts (not at claim, so a worker
        # that dies before sending burns no retry), and the task's count of dead claims starts over.
        session.execute(
            update(Task)
            .where(col(Task.batch_id) == batch_id, col(Task.status) == TaskStatus.CLAIMED)
            .values(
                status=TaskStatus.SUBMITTED,
                attempts=col(Task.attempts) + 1,
                claims=0,
                claimed_by=None,
                claimed_at=None,
                updated_at=now,
            )
        )
        session.commit()
        return True


def _is_recorded(engine: Engine, provider_batch_id: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(select(col(Batch.id)).where(col(Batch.provider_batch_id) == provider_batch_id)).first()
    return found is not None


def record_orphan(
    engine: Engine, client: ClaudeClient, info: BatchInfo, *, model: str, reason: str, cancel: bool = True
) -> int | None:
    """A batch of ours exists at the provider that no task points at: cancel it (unless it has ended, or
    ``cancel`` is False) and record it, so that whatever it billed lands in the ledger (purpose ``orphan``)
    and the run reports it. Only for batches proven ours (:mod:`nightbatch.submit.reconcile`)."""
    if cancel and info.processing_status != "ended":
        try:
            info = client.cancel_batch(info.id)
        except ProviderError as exc:
            log.error("could not cancel orphan batch %s: %s", info.id, exc)
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
            # Another worker recorded the same provider batch in the meantime: it is known, that is enough.
            session.rollback()
            return None
        assert batch.id is not None
        log.error("batch %s: %s", info.id, reason)
        return batch.id


def mark_create_failed(engine: Engine, batch_id: int, error: str, *, worker_died: bool = False) -> None:
    """The batch was never created: record why and put its tasks back in the queue, unharmed.

    No attempt was counted (that happens when a create is accepted). The claim is taken back from the
    tasks' ``claims`` unless ``worker_died`` (the reconciler giving up a dead worker's row): those deaths
    count towards the poison rule (:mod:`nightbatch.queue.claim`).
    """
    now = _now()
    with Session(engine) as session:
        session.execute(
            update(Batch)
            .where(col(Batch.id) == batch_id)
            .values(status=BatchStatus.CREATE_FAILED, error=error[:2000], claimed_by=None, claimed_at=None)
        )
        session.execute(
            update(Task)
            .where(col(Task.batch_id) == batch_id, col(Task.status) == TaskStatus.CLAIMED)
            .values(
                status=TaskStatus.QUEUED,
                claims=col(Task.claims) if worker_died else case((col(Task.claims) > 0, col(Task.claims) - 1), else_=0),
                batch_id=None,
                custom_id=None,
                claimed_by=None,
                claimed_at=None,
                updated_at=now,
            )
        )
        session.commit()


def _hand_over_claims(engine: Engine, batch_id: int) -> None:
    """This live worker leaves its pending row to the reconciler: its claim is not a death (poison rule)."""
    with Session(engine) as session:
        session.execute(
            update(Task)
            .where(col(Task.batch_id) == batch_id, col(Task.status) == TaskStatus.CLAIMED)
            .values(claims=case((col(Task.claims) > 0, col(Task.claims) - 1), else_=0))
        )
        session.commit()


def submit_batch(
    engine: Engine,
    client: ClaudeClient,
    store: ObjectStore,
    packed: PackedBatch,
    *,
    worker: str,
    run_id: int | None = None,
    cache_decision: dict[str, object] | None = None,
    cache_role: CacheRole | None = None,
) -> SubmitOutcome | None:
    """Steps 1–4 for one packed batch (see the module docstring).

    A refused create puts the tasks back and re-raises, so the caller stops submitting and the error is
    seen. A create whose outcome is unknown leaves the row pending for the reconciler. None when every
    task's claim was lost before the batch row was written.
    """
    written = write_pending(
        engine, packed, worker=worker, run_id=run_id, cache_decision=cache_decision, cache_role=cache_role
    )
    if written is None:
        return None
    batch_id = written
    task_ids = [r.task_id for r in packed.requests]
    try:
        archive_manifest(engine, store, batch_id, packed)
    except Exception as exc:
        # Nothing can be at the provider yet: give the claim up now rather than strand the tasks behind a
        # pending row for the whole lease (the reconciler would only find that nothing was created).
        mark_create_failed(engine, batch_id, f"failed before create (nothing sent): {exc}")
        raise FailedBeforeCreateError(batch_id, len(task_ids), exc) from exc
    try:
        info = client.create_batch(packed)
    except ProviderError as exc:
        if exc.maybe_applied:
            log.warning("batch %s: create outcome unknown (%s); left pending for reconciliation", batch_id, exc)
            _hand_over_claims(engine, batch_id)
            return SubmitOutcome(batch_id, None, BatchStatus.PENDING, str(exc), task_ids)
        mark_create_failed(engine, batch_id, str(exc))
        raise
    if not record_created(engine, batch_id, info, worker=worker):
        if _is_recorded(engine, info.id):
            # A reconciler found and adopted this very batch while our create was in flight: nothing to do.
            reason = f"created as {info.id}, already adopted by a reconciler"
            return SubmitOutcome(batch_id, info.id, BatchStatus(info.processing_status), reason, task_ids)
        reason = f"created after its row {batch_id} was given up by another worker (lease lapsed); canceled"
        record_orphan(engine, client, info, model=packed.model, reason=reason)
        return SubmitOutcome(batch_id, None, BatchStatus.CREATE_FAILED, reason, task_ids)
    log.info("batch %s: created %s with %d requests", batch_id, info.id, len(packed.requests))
    return SubmitOutcome(batch_id, info.id, BatchStatus(info.processing_status), None, task_ids)


def serialized_size(packed: PackedBatch) -> int:
    """The exact body size the SDK will send for ``packed`` (for tests and diagnostics)."""
    return len(canonical_json({"requests": packed.entries()}))
