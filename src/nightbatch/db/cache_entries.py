"""The batch-cache state of each prefix group: pilots in flight, entries known alive, and measured hit rates.

The provider's batch cache is not shared with real-time calls, and items of one batch never read each
other's writes: a group's prefix is read only by a batch sent *after* another batch wrote it. So a group
worth caching with no known live entry first sends a **pilot** (one real task, breakpoint at 1 h), and its
other tasks wait, queued, until the pilot's results are ingested. That waiting state is a ``cache_entry``
row in ``pilot_running``; every statement touching it lives here.

State of one group (model, prefix hash)::

    (no row) / cold ──pilot batch row written (same transaction)──▶ pilot_running
    pilot_running ──pilot ingested, its usage shows a write or read──▶ warm (expires_at = sent + TTL)
    pilot_running ──pilot ingested with no cache usage (errored…)──▶ cold, pilot_failures + 1
    pilot_running ──pilot batch create_failed / orphaned──▶ (treated as cold: a new pilot may go)
    warm ──any later batch of the group shows a write or read──▶ warm, expiry pushed on
    warm ──expires_at passed──▶ (treated as cold)

Entry times are on this process's clock, and conservative: an item was processed no earlier than its batch
row was written (``batch.created_at``), so ``created_at + TTL`` is a lower bound on the entry's expiry.

The hit rate the planner uses is measured from the ledger: over the group's last few ``fanout`` batches,
read tokens ÷ (read + written tokens) — a fan-out item that misses pays a write, so the ratio is the share
of items that found the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, select, update
from sqlmodel import col

from nightbatch.db.models import Batch, BatchStatus, CacheEntry, CacheRole, CacheState, UsageRecord, utcnow

__all__ = [
    "ALIVE_BATCH",
    "GroupCache",
    "MeasuredRate",
    "claim_pilot",
    "group_states",
    "link_pilot",
    "measured_hit_rate",
    "pilot_minutes",
    "record_batch_cache",
]

GroupKey = tuple[str, str]
TTL_SECONDS = {"5m": 300, "1h": 3600}
# A pilot whose batch is in one of these may still write the entry: its group keeps waiting.
ALIVE_BATCH = (BatchStatus.PENDING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELING, BatchStatus.ENDED)
PILOT, FANOUT = CacheRole.PILOT, CacheRole.FANOUT
MEASURED_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class GroupCache:
    """What the database knows of one group's batch-cache entry."""

    model: str
    prefix_hash: str
    state: CacheState | None = None
    ttl: str | None = None
    pilot_batch_id: int | None = None
    pilot_status: BatchStatus | None = None
    pilot_started_at: datetime | None = None
    pilot_failures: int = 0
    expires_at: datetime | None = None

    @property
    def pilot_running(self) -> bool:
        """A pilot is out (or being sent) for this group: its other tasks wait."""
        if self.state != CacheState.PILOT_RUNNING:
            return False
        # No batch linked yet: the pilot's row is being written by another worker right now.
        return self.pilot_batch_id is None or self.pilot_status in ALIVE_BATCH

    @property
    def ttl_minutes(self) -> float | None:
        """The TTL of the known entry, in minutes (None when none is known)."""
        return None if self.ttl is None else TTL_SECONDS.get(self.ttl, 300) / 60

    def live_minutes(self, now: datetime) -> float:
        """Minutes the known entry surely stays alive (0 when none is known)."""
        if self.state != CacheState.WARM or self.expires_at is None:
            return 0.0
        return max(0.0, (self.expires_at - now).total_seconds() / 60)


def group_states(conn: Engine | Connection, keys: list[GroupKey]) -> dict[GroupKey, GroupCache]:
    """The known state of each group in ``keys`` (groups without a row get an empty :class:`GroupCache`)."""
    states = {key: GroupCache(*key) for key in keys}
    if not keys:
        return states
    hashes = sorted({h for _, h in keys})
    stmt = (
        select(
            col(CacheEntry.model),
            col(CacheEntry.prefix_hash),
            col(CacheEntry.state),
            col(CacheEntry.ttl),
            col(CacheEntry.pilot_batch_id),
            col(Batch.status),
            col(CacheEntry.pilot_started_at),
            col(CacheEntry.pilot_failures),
            col(CacheEntry.expires_at),
        )
        .select_from(CacheEntry)
        .outerjoin(Batch, col(Batch.id) == col(CacheEntry.pilot_batch_id))
        .where(col(CacheEntry.prefix_hash).in_(hashes))
    )
    with _Connected(conn) as c:
        for row in c.execute(stmt):
            key = (row[0], row[1])
            if key in states:
                states[key] = GroupCache(*row)
    return states


def claim_pilot(conn: Connection, model: str, prefix_hash: str, *, ttl: str, prefix_tokens: int,
                now: datetime) -> bool:  # fmt: skip
    """Take the group's pilot slot inside the caller's transaction; False if another pilot is running.

    Two workers racing for a group with no row both insert; the unique key fails the second one's
    transaction (an ``IntegrityError`` the caller treats like False).
    """
    found = group_states(conn, [(model, prefix_hash)])[(model, prefix_hash)]
    if found.pilot_running:
        return False
    values: dict[str, Any] = {
        "state": CacheState.PILOT_RUNNING, "ttl": ttl, "pilot_batch_id": None, "pilot_started_at": now,
        "prefix_tokens": prefix_tokens, "updated_at": now,
    }  # fmt: skip
    if found.state is None:
        conn.execute(insert(CacheEntry).values(model=model, prefix_hash=prefix_hash, pilot_failures=0, **values))
        return True
    # Compare-and-set on what was read: a concurrent claim that got there first makes this match nothing.
    same = [col(CacheEntry.model) == model, col(CacheEntry.prefix_hash) == prefix_hash,
            col(CacheEntry.state) == found.state]  # fmt: skip
    same.append(
        col(CacheEntry.pilot_batch_id).is_(None)
        if found.pilot_batch_id is None
        else col(CacheEntry.pilot_batch_id) == found.pilot_batch_id
    )
    taken = conn.execute(update(CacheEntry).where(*same).values(**values))
    return taken.rowcount == 1


def link_pilot(conn: Connection, model: str, prefix_hash: str, batch_id: int) -> None:
    """Point the group's running pilot at its batch row (same transaction as :func:`claim_pilot`)."""
    conn.execute(
        update(CacheEntry)
        .where(col(CacheEntry.model) == model, col(CacheEntry.prefix_hash) == prefix_hash)
        .values(pilot_batch_id=batch_id)
    )


def record_batch_cache(conn: Connection, batch: Batch, now: datetime | None = None) -> CacheState | None:
    """After ingesting ``batch`` (same transaction): what its usage shows about its group's entry.

    Returns the group's new state, or None when the batch carried no breakpoint (nothing learnt).
    """
    if batch.cache_ttl is None or batch.prefix_hash is None or batch.id is None:
        return None
    now = now or utcnow()
    reads, writes = conn.execute(
        select(
            func.coalesce(func.sum(col(UsageRecord.cache_read_tokens)), 0),
            func.coalesce(func.sum(col(UsageRecord.cache_write_5m_tokens) + col(UsageRecord.cache_write_1h_tokens)), 0),
        ).where(col(UsageRecord.batch_id) == batch.id)
    ).one()
    key = [col(CacheEntry.model) == batch.model, col(CacheEntry.prefix_hash) == batch.prefix_hash]
    existing = conn.execute(
        select(col(CacheEntry.state), col(CacheEntry.pilot_batch_id), col(CacheEntry.expires_at)).where(*key)
    ).first()
    is_pilot = existing is not None and existing[1] == batch.id and existing[0] == CacheState.PILOT_RUNNING
    if reads or writes:
        sent = batch.created_at or now
        expires = sent + timedelta(seconds=TTL_SECONDS.get(batch.cache_ttl, 300))
        if existing is not None and existing[2] is not None and existing[2] > expires and not is_pilot:
            expires = existing[2]
        values: dict[str, Any] = {"expires_at": expires, "updated_at": now, "ttl": batch.cache_ttl}
        if writes:
            values["last_write_at"] = sent
        if reads:
            values["last_read_at"] = sent
        if existing is None:
            conn.execute(insert(CacheEntry).values(model=batch.model, prefix_hash=batch.prefix_hash,
                                                   state=CacheState.WARM, pilot_failures=0, **values))  # fmt: skip
            return CacheState.WARM
        if existing[0] == CacheState.PILOT_RUNNING and not is_pilot:
            # Another pilot is out for this group: it will settle the state; only the expiry is learnt here.
            conn.execute(update(CacheEntry).where(*key).values(**values))
            return CacheState.PILOT_RUNNING
        conn.execute(update(CacheEntry).where(*key).values(state=CacheState.WARM, pilot_failures=0, **values))
        return CacheState.WARM
    if is_pilot:
        # The pilot wrote nothing (its task errored, expired, or the prefix was not cacheable): the group
        # goes on cold; the planner decides whether another pilot is worth it.
        conn.execute(
            update(CacheEntry)
            .where(*key)
            .values(state=CacheState.COLD, pilot_failures=col(CacheEntry.pilot_failures) + 1, updated_at=now)
        )
        return CacheState.COLD
    return None


@dataclass(frozen=True)
class MeasuredRate:
    """A hit rate measured from the ledger, with what it rests on."""

    rate: float
    read_tokens: int
    write_tokens: int
    batches: int
    scope: str  # "group" or "model"

    def as_record(self) -> dict[str, Any]:
        return {"rate": round(self.rate, 4), "read_tokens": self.read_tokens, "write_tokens": self.write_tokens,
                "batches": self.batches, "scope": self.scope}  # fmt: skip


def measured_hit_rate(
    conn: Engine | Connection,
    model: str,
    prefix_hash: str,
    *,
    last: int = 5,
    within: timedelta = MEASURED_WINDOW,
    now: datetime | None = None,
) -> MeasuredRate | None:
    """Read ÷ (read + write) tokens over the group's last ``last`` ingested fan-out batches of the last ``within``.

    Falls back to the model's fan-out batches of any group when the group has none; None when there is no
    fan-out batch of the model in the window. The window lets a group the planner stopped caching (no more
    fan-outs, so no new measurement) be tried again once its bad figures are old.
    """
    since = (now or utcnow()) - within
    for scope, where in (("group", [col(Batch.prefix_hash) == prefix_hash]), ("model", [])):
        recent = (
            select(col(Batch.id))
            .where(
                col(Batch.model) == model, col(Batch.cache_role) == FANOUT, col(Batch.status) == BatchStatus.INGESTED
            )
            .where(col(Batch.created_at) >= since, *where)
            .order_by(col(Batch.id).desc())
            .limit(last)
            .subquery()
        )
        stmt = select(
            func.count(func.distinct(col(UsageRecord.batch_id))),
            func.coalesce(func.sum(col(UsageRecord.cache_read_tokens)), 0),
            func.coalesce(func.sum(col(UsageRecord.cache_write_5m_tokens) + col(UsageRecord.cache_write_1h_tokens)), 0),
        ).where(col(UsageRecord.batch_id).in_(select(recent.c.id)))
        with _Connected(conn) as c:
            batches, reads, writes = c.execute(stmt).one()
        if reads + writes > 0:
            return MeasuredRate(int(reads) / (int(reads) + int(writes)), int(reads), int(writes), int(batches), scope)
    return None


def pilot_minutes(conn: Engine | Connection, *, last: int = 10) -> float | None:
    """The longest time, in minutes, one of the last ``last`` pilot batches took from its creation to its end.

    Both times are the provider's (``created_at`` / ``ended_at`` of the batch), so an emulator running on
    an accelerated clock gives figures in its own time, consistently.
    """
    stmt = (
        select(col(Batch.submitted_at), col(Batch.ended_at))
        .where(
            and_(col(Batch.cache_role) == PILOT, col(Batch.ended_at).is_not(None), col(Batch.submitted_at).is_not(None))
        )
        .order_by(col(Batch.id).desc())
        .limit(last)
    )
    with _Connected(conn) as c:
        spans = [(ended - created).total_seconds() / 60 for created, ended in c.execute(stmt)]
    return max(spans) if spans else None


class _Connected:
    """A connection from an engine (opened and closed here) or the caller's own (left alone)."""

    def __init__(self, bind: Engine | Connection) -> None:
        self._bind = bind
        self._owned: Connection | None = None

    def __enter__(self) -> Connection:
        if isinstance(self._bind, Connection):
            return self._bind
        self._owned = self._bind.connect()
        return self._owned

    def __exit__(self, *exc: object) -> None:
        if self._owned is not None:
            self._owned.close()
