"""Claiming tasks for a worker: atomic, lease-based, safe under concurrent workers.

A task is *claimable* when it is ``queued``, or ``claimed`` with a lease (``claimed_at``) older than
``lease_seconds``: its worker died. :func:`claim` moves up to ``n`` claimable tasks to ``claimed`` in one
statement::

    UPDATE task SET status='claimed', claimed_by=:worker, claimed_at=:now, claims=claims+1
    WHERE id IN (SELECT id FROM task WHERE <claimable> ORDER BY priority DESC, deadline NULLS LAST, id
                 LIMIT :n)                                      -- SQLite
    WHERE id = ANY(ARRAY(SELECT ... LIMIT :n FOR UPDATE SKIP LOCKED))   -- PostgreSQL
      AND <claimable>
    RETURNING ...

On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers take disjoint rows without waiting, and
the repeated condition makes a row whose claim committed meanwhile drop out. SQLite ignores
``FOR UPDATE``; there the single ``UPDATE`` holds the database's write lock from its read to its write,
so it is atomic too.

``attempts`` counts requests *sent*, not claims: it goes up when a create is accepted (or an unrecorded
create is adopted, :func:`nightbatch.submit.submitter.record_created`), so a worker that dies between
claim and send burns no retry. ``claims`` counts claims since the task's last send that did not end
cleanly: a claim adds one, :func:`release` (a live worker handing the task back, e.g. over budget or to
wait for a cache pilot) takes it back, and sending resets it. Only a claim whose worker died keeps its
count, so ``claims`` is the number of workers the task took down. **Poison rule**: a task taken over
after ``poison_claims`` such deaths is not handed to another worker but failed with ``error_type =
poison`` (the caller passes ``Settings.poison_claims``, default 3).
A worker that may have lost its lease must finish with compare-and-set updates
(``... WHERE id = :id AND status = 'claimed' AND claimed_by = :worker``) and check the row count.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Engine, Table, and_, any_, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from nightbatch.db.engine import dialect_name
from nightbatch.db.models import WORKER_MAX_LENGTH, TaskStatus, metadata, utcnow

__all__ = ["DEFAULT_LEASE_SECONDS", "DEFAULT_POISON_CLAIMS", "ClaimedTask", "claim", "release", "renew_lease"]

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 900
DEFAULT_POISON_CLAIMS = 3
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
_POISON_MESSAGE = "claimed {n} times without its request ever being sent: it may be what kills its workers"


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
    poison_claims: int = DEFAULT_POISON_CLAIMS,
) -> list[ClaimedTask]:
    """Atomically claim up to ``n`` claimable tasks for ``worker``, highest priority first.

    Order: priority descending, then deadline (soonest first, none last), then id. ``task_types``
    restricts the claim to those types. ``now`` (default: the clock) is the claim time and the reference
    for lease expiry. Returns the claimed tasks in that order; an empty list when there is nothing to do.
    A picked task whose earlier claims died ``poison_claims`` times is failed as ``poison`` instead
    (in the same transaction) and not returned.
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
        .values(status=TaskStatus.CLAIMED, claimed_by=worker, claimed_at=now, claims=_TASK.c.claims + 1)
        .returning(*_RETURNED, _TASK.c.claims)
    )
    with engine.begin() as conn:
        rows = conn.execute(stmt).all()
        poisoned = [row.id for row in rows if row.claims > poison_claims]
        if poisoned:
            conn.execute(
                update(_TASK)
                .where(_TASK.c.id.in_(poisoned), _TASK.c.claimed_by == worker)
                .values(
                    status=TaskStatus.FAILED,
                    error_type="poison",
                    error_message=_POISON_MESSAGE.format(n=poison_claims),
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=now,
                )
            )
            log.error("tasks %s failed as poison: %s", poisoned, _POISON_MESSAGE.format(n=poison_claims))
    kept = (ClaimedTask(**{k: v for k, v in row._asdict().items() if k != "claims"}) for row in rows)
    return sorted((t for t in kept if t.id not in poisoned), key=_sort_key)


def _batches(ids: Iterable[int]) -> Iterable[Sequence[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), _IDS_PER_STATEMENT):
        yield unique[start : start + _IDS_PER_STATEMENT]


def release(engine: Engine, task_ids: Iterable[int], worker: str, *, count_attempt: bool = False) -> list[int]:
    """Put tasks that ``worker`` holds back to ``queued``; returns the ids actually released.

    Tasks this worker no longer holds (reclaimed after its lease expired, or moved on) are left alone.
    A release is a live worker handing a task back, so the claim is taken back from ``claims`` and no
    attempt is counted, unless ``count_attempt`` (the worker did send it, and failed).
    """
    _check_worker(worker)
    attempts = _TASK.c.attempts + 1 if count_attempt else _TASK.c.attempts
    released: list[int] = []
    with engine.begin() as conn:
        for ids in _batches(task_ids):
            stmt = (
                update(_TASK)
                .where(_TASK.c.id.in_(ids), _TASK.c.status == TaskStatus.CLAIMED, _TASK.c.claimed_by == worker)
                .values(
                    status=TaskStatus.QUEUED,
                    claimed_by=None,
                    claimed_at=None,
                    attempts=attempts,
                    claims=case((_TASK.c.claims > 0, _TASK.c.claims - 1), else_=0),
                )
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
