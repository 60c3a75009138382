"""Reconciling batches whose creation was never confirmed (see the state diagram in :mod:`nightbatch.db.batches`).

A ``pending`` row whose lease has lapsed belongs to a worker that died (or lost its connection) around
``create``. The provider offers no client token on batches and its list endpoint gives counts and times
only, and other installations may share the API workspace (staging and production on one key, two
teams). So nightbatch **never acts on a batch it has not proven to be its own**: it does not cancel,
adopt, ingest, bill or list one.

Proof is in the custom_ids (:mod:`nightbatch.custom_ids`): each carries this database's installation id
and the id of the pending row that sent it. They can be read from a batch's results, which exist once
the batch has ended. So, for each unrecorded provider batch created since our oldest open row:

- **ended**: the first result lines name the installation and row. Ours, for a stale pending row: the
  row adopts it (it is ingested normally). Ours, for a row already given up (a create that landed after
  its lease lapsed): recorded as an ``orphan`` batch, so what it billed reaches the ledger. Not ours (or
  not provably ours): left alone, and named once per process as an unknown batch in this workspace.
- **still running**: nothing can be proven yet, and nothing is canceled. A stale row that such a batch
  could be (same request count, created after the row) waits for it to end; a stale row that no batch
  could be gives up (its create never took effect): its tasks go back to the queue.

The price of never canceling unproven work: a create that lands after its row was given up runs to its
end (its tasks may meanwhile have been sent again) and is booked as orphan usage; and a row may wait up
to the batch's 24 h for another installation's equal-sized batch to end before it is given up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nightbatch import custom_ids
from nightbatch.claude import BatchInfo, ClaudeClient
from nightbatch.db import Engine
from nightbatch.db.batches import take_lease
from nightbatch.db.installation import installation_id
from nightbatch.db.models import BatchStatus
from nightbatch.db.pending_batches import StaleRow, adopt, given_up_since, known_provider_ids, stale_pending
from nightbatch.errors import ProviderError
from nightbatch.submit.submitter import mark_create_failed, record_orphan

__all__ = ["ReconcileOutcome", "reconcile_pending"]

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=10)
# How far back batches given up by a reconciler are watched for a create that landed late.
ORPHAN_WINDOW = timedelta(hours=24)
# Result lines read to prove a batch's owner (the first readable custom_id decides; a line may be damaged).
PROOF_LINES = 20

# Owners of ended batches are fixed for good: each provider batch's results are read once per process.
# Keyed by id and creation time: an emulator (or a test) may restart its ids.
_owners: dict[tuple[str, datetime], custom_ids.CustomId | None] = {}
# Unknown batches are named once per process, not on every round.
_reported_unknown: set[tuple[str, datetime]] = set()


@dataclass(frozen=True)
class ReconcileOutcome:
    batch_id: int | None
    found: BatchInfo | None
    canceled: bool = False  # kept for callers; an unrecorded batch is never canceled any more
    note: str | None = None

    def describe(self) -> str:
        if self.note is not None:
            return self.note
        if self.found is None:
            return f"batch {self.batch_id}: create never took effect; its tasks were re-queued"
        return f"batch {self.batch_id}: created as {self.found.id} but not recorded; proven ours, recorded, ingesting"


def _take_lease(engine: Engine, batch_id: int, worker: str, *, lease_seconds: int, now: datetime) -> bool:
    # A function of its own: the crash campaign kills a reconciler right after it took a row's lease.
    return take_lease(engine, batch_id, worker, status=BatchStatus.PENDING, lease_seconds=lease_seconds, now=now)


def _could_be(batch: BatchInfo, row: StaleRow) -> bool:
    return bool(batch.counts.total == row.request_count and batch.created_at >= row.created_at - CLOCK_SKEW)


def _owner(client: ClaudeClient, batch: BatchInfo) -> custom_ids.CustomId | None:
    """Who sent an ended batch, read from its results' custom_ids; None when they prove nobody's."""
    key = (batch.id, batch.created_at)
    if key in _owners:
        return _owners[key]
    found: custom_ids.CustomId | None = None
    with client.result_lines(batch.id) as lines:
        for n, line in enumerate(lines):
            named = custom_ids.named_in(line)
            parsed = custom_ids.parse(named) if named else None
            if parsed is not None and parsed.installation is not None:
                found = parsed
                break
            if n + 1 >= PROOF_LINES:
                break
    _owners[key] = found
    return found


def _adopt(engine: Engine, row_id: int, match: BatchInfo, worker: str) -> ReconcileOutcome:
    note = f"created as {match.id} but not recorded (worker died around create); proven ours by its custom_ids"
    adopt(engine, row_id, match, worker=worker, note=note)
    return ReconcileOutcome(row_id, match)


def _owners_of_ended(client: ClaudeClient, candidates: list[BatchInfo]) -> dict[str, custom_ids.CustomId | None]:
    owners: dict[str, custom_ids.CustomId | None] = {}
    for batch in candidates:
        if batch.processing_status != "ended":
            continue
        try:
            owners[batch.id] = _owner(client, batch)
        except ProviderError as exc:  # unknown this round; tried again next time, never acted on meanwhile
            log.warning("batch %s: could not read its results to prove its owner: %s", batch.id, exc)
    return owners


def reconcile_pending(
    engine: Engine, client: ClaudeClient, *, worker: str, lease_seconds: int, now: datetime | None = None
) -> list[ReconcileOutcome]:
    """Resolve every pending batch whose lease has lapsed, by proof only. Safe to run from several workers.

    See the module docstring. Returns what was done, including waits and unknown batches (once).
    """
    now = now or datetime.now(UTC)
    stale = stale_pending(engine, lease_seconds=lease_seconds, now=now)
    given_up = given_up_since(engine, now - ORPHAN_WINDOW)
    outcomes: list[ReconcileOutcome] = []
    if not stale and not given_up:
        return outcomes
    ours = installation_id(engine)
    known = known_provider_ids(engine)
    earliest = min(row.created_at for row in [*stale, *given_up]) - CLOCK_SKEW
    candidates = [b for b in client.list_batches(created_after=earliest) if b.id not in known]
    owners = _owners_of_ended(client, candidates)
    proven: dict[int, list[BatchInfo]] = {}
    unknown: list[BatchInfo] = []
    for batch in candidates:
        if batch.id not in owners:
            continue  # still running (or unreadable this round): nothing provable yet
        owner = owners[batch.id]
        if owner is not None and owner.belongs_to(ours) and owner.row is not None:
            proven.setdefault(owner.row, []).append(batch)
        else:
            unknown.append(batch)
    undecided = [b for b in candidates if b.id not in owners]  # running, or results unreadable this round
    for row in stale:
        mine = proven.pop(row.id, [])
        if not mine and any(_could_be(b, row) for b in undecided):
            note = f"batch {row.id}: an unrecorded batch still running could be its create; waiting for it to end"
            outcomes.append(ReconcileOutcome(row.id, None, note=note))
            continue
        if not _take_lease(engine, row.id, worker, lease_seconds=lease_seconds, now=now):
            continue  # another worker is on it
        if not mine:
            reason = "create was never confirmed and no batch of this row exists at the provider"
            mark_create_failed(engine, row.id, reason, worker_died=True)
            outcome = ReconcileOutcome(row.id, None)
        else:
            first, *extra = mine
            outcome = _adopt(engine, row.id, first, worker)
            known.add(first.id)
            for batch in extra:  # a second create for one row cannot happen (no retries), but if it did: booked
                record_orphan(engine, client, batch, model=row.model, reason="a second batch of one row", cancel=False)
        log.warning(outcome.describe())
        outcomes.append(outcome)
    by_id = {row.id: row for row in given_up}
    for row_id, batches in proven.items():
        given = by_id.get(row_id)
        if given is None:
            continue  # a live worker's row (it records its own create) or one outside the window
        for batch in batches:
            reason = f"created after its row {row_id} was given up (a late create); its cost booked as orphan"
            record_orphan(engine, client, batch, model=given.model, reason=reason, cancel=False)
    fresh = [b.id for b in unknown if (b.id, b.created_at) not in _reported_unknown]
    if fresh:
        _reported_unknown.update((b.id, b.created_at) for b in unknown)
        note = f"unknown batches in this workspace (not proven ours, left alone): {', '.join(fresh)}"
        log.warning(note)
        outcomes.append(ReconcileOutcome(None, None, note=note))
    return outcomes
