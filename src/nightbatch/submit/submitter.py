"""Submitting packed batches exactly once. The database is the source of truth.

The batch row's states and transitions are drawn in :mod:`nightbatch.db.batches`, and the ones on this path
are made by :mod:`nightbatch.db.pending_batches`; this module decides which to make, and when. The order of
effects is what makes a crash at any point safe:

1. one transaction writes the ``pending`` batch row, binds every request's custom_id to that row and this
   installation (:mod:`nightbatch.custom_ids`) and links its tasks (``batch_id``, ``custom_id``);
2. the exact request manifest is archived to the object store and its key recorded on the row (if this
   fails, nothing was sent: the row becomes ``create_failed`` and its tasks are queued again at once);
3. ``create`` is called with SDK retries off (a retried create can make a second, billed batch);
4. one transaction records the provider id and moves the tasks to ``submitted``.

A worker killed between 3 and 4 leaves a ``pending`` row whose batch exists at the provider; the
reconciler (:mod:`nightbatch.submit.reconcile`) finds it by the custom_ids in its results.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from nightbatch import custom_ids
from nightbatch.build.prefix import canonical_json
from nightbatch.claude import BatchInfo, ClaudeClient
from nightbatch.db import Engine
from nightbatch.db.installation import installation_id
from nightbatch.db.models import BatchStatus, CacheRole, UsagePurpose
from nightbatch.db.pending_batches import (
    PendingBatch,
    PendingRequest,
    insert_orphan,
    insert_pending,
    is_recorded,
    set_manifest_uri,
)
from nightbatch.db.pending_batches import mark_create_failed as mark_create_failed
from nightbatch.db.pending_batches import record_created as record_created
from nightbatch.db.task_links import hand_over_claims
from nightbatch.errors import NightbatchError, ProviderError
from nightbatch.storage import ObjectStore
from nightbatch.submit.pack import PackedBatch

__all__ = [
    "FailedBeforeCreateError",
    "SubmitOutcome",
    "archive_manifest",
    "manifest_key",
    "mark_create_failed",
    "record_created",
    "record_orphan",
    "submit_batch",
    "write_pending",
]

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
    """Step 1: the pending batch row and its task links, in one transaction; returns the row id.

    The transition is :func:`nightbatch.db.pending_batches.insert_pending`. Each request's custom_id is bound to the
    row and this installation, and ``packed`` is updated to match: a task whose claim was lost to another
    worker is dropped from it, so it can never go out twice. Returns None when no task is left, or (a
    pilot) when another worker's pilot for the same group is out.
    """
    installation = installation_id(engine)  # before the write transaction: it may insert on first use
    pending = PendingBatch(
        model=packed.model,
        prefix_hash=packed.prefix_hash,
        worker=worker,
        cache_ttl=packed.ttl,
        cache_decision=cache_decision,
        run_id=run_id,
        purpose=purpose,
        cache_role=cache_role,
        calibration_id=calibration_id,
        pilot_prefix_tokens=_prefix_tokens(cache_decision),
    )

    def bind(row: int) -> list[PendingRequest]:
        # Every custom_id now names this row and this installation: what proves the batch ours later.
        bound = [replace(r, custom_id=custom_ids.bind(r.custom_id, row=row, installation=installation))
                 for r in packed.requests]  # fmt: skip
        resized = any(len(a.custom_id) != len(b.custom_id) for a, b in zip(packed.requests, bound, strict=True))
        packed.requests = bound
        if resized:
            packed.recount()
        # A probe, or a shadow request, is not the task's own request: the task stays where it is.
        return [
            PendingRequest(r.custom_id, r.model, None if _leaves_task(purpose, r.custom_id) else r.task_id)
            for r in bound
        ]

    def payload_bytes(kept: Sequence[int]) -> int:
        if len(kept) != len(packed.requests):
            packed.requests = [packed.requests[i] for i in kept]
            packed.recount()
        return packed.payload_bytes

    return insert_pending(engine, pending, now=_now(), bind=bind, payload_bytes=payload_bytes)


def _leaves_task(purpose: UsagePurpose, custom_id: str) -> bool:
    return purpose != UsagePurpose.TASK or custom_ids.is_shadow(custom_id)


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
    set_manifest_uri(engine, batch_id, uri)
    return uri


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
    batch_id = insert_orphan(engine, info, model=model, reason=reason)
    if batch_id is not None:  # None: another worker recorded the same provider batch meanwhile; known is enough
        log.error("batch %s: %s", info.id, reason)
    return batch_id


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
    purpose: UsagePurpose = UsagePurpose.TASK,
    calibration_id: int | None = None,
) -> SubmitOutcome | None:
    """Steps 1–4 for one packed batch (see the module docstring).

    A refused create puts the tasks back and re-raises, so the caller stops submitting and the error is
    seen. A create whose outcome is unknown leaves the row pending for the reconciler. None when every
    task's claim was lost before the batch row was written.
    """
    written = write_pending(
        engine, packed, worker=worker, run_id=run_id, cache_decision=cache_decision, cache_role=cache_role,
        purpose=purpose, calibration_id=calibration_id,
    )  # fmt: skip
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
            hand_over_claims(engine, batch_id)
            return SubmitOutcome(batch_id, None, BatchStatus.PENDING, str(exc), task_ids)
        mark_create_failed(engine, batch_id, str(exc))
        raise
    if not record_created(engine, batch_id, info, worker=worker):
        if is_recorded(engine, info.id):
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
