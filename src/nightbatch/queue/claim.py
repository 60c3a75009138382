"""Claiming tasks for a worker: atomic, lease-based, safe under concurrent workers.

A task is *claimable* when it is ``queued``, or ``claimed`` with a lease (``claimed_at``) older than
``lease_seconds``: its worker died. :func:`claim` moves up to ``n`` claimable tasks to ``claimed`` in one
statement::

    UPDATE task SET status='claimed', claimed_by=:worker, claimed_at=:now, attempts=attempts+1
    WHERE id IN (SELECT id FROM task WHERE <claimable> ORDER BY priority DESC, deadline NULLS LAST, id
                 LIMIT :n)                                      -- SQLite
    WHERE id = ANY(ARRAY(SELECT ... LIMIT :n FOR UPDATE SKIP LOCKED))   -- PostgreSQL
      AND <claimable>
    RETURNING ...

On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers take disjoint rows without waiting, and
the repeated condition makes a row whose claim committed meanwhile drop out. SQLite ignores
``FOR UPDATE``; there the single ``UPDATE`` holds the database's write lock from its read to its write,
so it is atomic too.

``attempts`` counts claims: a claim adds one, :func:`release` takes it back (unless told the attempt
counts), and a reclaim after an expired lease counts, so a task that kills its worker every time is seen.
A worker that may have lost its lease must finish with compare-and-set updates
(``... WHERE id = :id AND status = 'claimed' AND claimed_by = :worker``) and check the row count.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Engine, Table, and_, any_, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from nightbatch.db.engine import dialect_name
from nightbatch.db.models import WORKER_MAX_LENGTH, TaskStatus, metadata, utcnow

__all__ = ["DEFAULT_LEASE_SECONDS", "ClaimedTask", "claim", "release", "renew_lease"]

DEFAULT_LEASE_SECONDS = 900
_TASK: Table = metadata.tables["task"]
_IDS_PER_STATEMENT = 1000


@dataclass(frozen=True)
class ClaimedTask:
    """A snapshot of a task as it was claimed (not a live database object)."""

    id: int
    task_type: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    priority: int
    deadline: datetime | None
    model_override: str | None
    source: str | None
    claimed_by: str
    claimed_at: datetime
    route_model: str | None = None  # set when a failed quality check escalated the task to a higher rung


_RETURNED = (
    _TASK.c.id,
    _TASK.c.task_type,
    _TASK.c.payload,
    _TASK.c.idempotency_key,
    _TASK.c.attempts,
    _TASK.c.priority,
    _TASK.c.deadline,
    _TASK.c.model_override,
    _TASK.c.source,
    _TASK.c.claimed_by,
    _TASK.c.claimed_at,
    _TASK.c.route_model,
)


def _check_worker(worker: str) -> None:
    if not worker or len(worker) > WORKER_MAX_LENGTH:
        raise ValueError(f"worker must be 1 to {WORKER_MAX_LENGTH} characters, got {worker!r}")


def _sort_key(task: ClaimedTask) -> tuple[int, bool, datetime | None, int]:
    return (-task.priority, task.deadline is None, task.deadline, task.id)


def claim(
    engine: Engine,
    n: int,
    worker: str,
    *,
    task_types: Collection[str] | None = None,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> list[ClaimedTask]:
    """Atomically claim up to ``n`` claimable tasks for ``worker``, highest priority first.

    Order: priority descending, then deadline (soonest first, none last), then id. ``task_types``
    restricts the claim to those types. ``now`` (default: the clock) is the claim time and the reference
    for lease expiry. Returns the claimed tasks in that order; an empty list when there is nothing to do.
    """
    _check_worker(worker)
    if n < 0 or lease_seconds < 0:
        raise ValueError(f"n and lease_seconds must not be negative (got {n}, {lease_seconds})")
    if n == 0 or (task_types is not None and not task_types):
        return []
    now = now or utcnow()
    cutoff = now - timedelta(seconds=lease_seconds)
    claimable: list[ColumnElement[bool]] = [
        or_(
            _TASK.c.status == TaskStatus.QUEUED,
            # A stale claim is taken over only before it was linked to a batch: once linked, the task may
            # already be at the provider, and only the batch's reconciliation may free it.
            and_(_TASK.c.status == TaskStatus.CLAIMED, _TASK.c.claimed_at < cutoff, _TASK.c.batch_id.is_(None)),
        )
    ]
    if task_types is not None:
        claimable.append(_TASK.c.task_type.in_(sorted(task_types)))
    pick = (
        select(_TASK.c.id)
        .where(*claimable)
        .order_by(_TASK.c.priority.desc(), _TASK.c.deadline.asc().nulls_last(), _TASK.c.id)
        .limit(n)
    )
    picked: ColumnElement[bool]
    if dialect_name(engine) == "postgresql":
        # id = ANY(ARRAY(subquery)) runs the subquery once, as an InitPlan. With a plain IN (subquery) the
        # planner may pick a semi-join that rescans the subquery per row, and each rescan skips the rows
        # this very statement just updated and locks *further* ones: more than n rows get claimed.
        ids = func.array(pick.with_for_update(skip_locked=True).scalar_subquery(), type_=ARRAY(BigInteger()))
        picked = _TASK.c.id == any_(ids)
    else:
        picked = _TASK.c.id.in_(pick)
    stmt = (
        update(_TASK)
        .where(picked, *claimable)
        .values(status=TaskStatus.CLAIMED, claimed_by=worker, claimed_at=now, attempts=_TASK.c.attempts + 1)
        .returning(*_RETURNED)
    )
    with engine.begin() as conn:
        rows = conn.execute(stmt).all()
    return sorted((ClaimedTask(**row._asdict()) for row in rows), key=_sort_key)


def _batches(ids: Iterable[int]) -> Iterable[Sequence[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), _IDS_PER_STATEMENT):
        yield unique[start : start + _IDS_PER_STATEMENT]


def release(engine: Engine, task_ids: Iterable[int], worker: str, *, count_attempt: bool = False) -> list[int]:
    """Put tasks that ``worker`` holds back to ``queued``; returns the ids actually released.

    Tasks this worker no longer holds (reclaimed after its lease expired, or moved on) are left alone.
    The claim's attempt is taken back unless ``count_attempt`` (the worker did try, and failed).
    """
    _check_worker(worker)
    attempts = _TASK.c.attempts if count_attempt else _TASK.c.attempts - 1
    released: list[int] = []
    with engine.begin() as conn:
        for ids in _batches(task_ids):
            stmt = (
                update(_TASK)
                .where(_TASK.c.id.in_(ids), _TASK.c.status == TaskStatus.CLAIMED, _TASK.c.claimed_by == worker)
                .values(status=TaskStatus.QUEUED, claimed_by=None, claimed_at=None, attempts=attempts)
                .returning(_TASK.c.id)
            )
            released.extend(conn.execute(stmt).scalars())
    return sorted(released)


def renew_lease(engine: Engine, task_ids: Iterable[int], worker: str, *, now: datetime | None = None) -> list[int]:
    """Extend ``worker``'s lease on tasks it still holds; returns their ids. Missing ids were lost."""
    _check_worker(worker)
    now = now or utcnow()
    renewed: list[int] = []
    with engine.begin() as conn:
        for ids in _batches(task_ids):
            stmt = (
                update(_TASK)
                .where(_TASK.c.id.in_(ids), _TASK.c.status == TaskStatus.CLAIMED, _TASK.c.claimed_by == worker)
                .values(claimed_at=now)
                .returning(_TASK.c.id)
            )
            renewed.extend(conn.execute(stmt).scalars())
    return sorted(renewed)
