"""A worker's claim on queued tasks: claim (failing the poisoned), renew the lease, release, or fail unsent.

Every statement that moves a task between ``queued`` and ``claimed``, or fails a claimed task before its
request is sent (as poison at claim, or because its request could not be built), is here;
:mod:`nightbatch.queue` keeps the decisions (the lease, the order a caller sees) and calls these. See
:mod:`nightbatch.queue.claim` for the lease, the ``claims`` counter and the poison rule. Tasks get into the
queue through :mod:`nightbatch.db.task_inserts`; a claimed task linked to a batch row is moved on by that
row's transitions (:mod:`nightbatch.db.task_links`).

The claim is one ``UPDATE ... RETURNING``::

    WITH queued_first AS (SELECT id, priority, deadline FROM task WHERE status = 'queued'
                          ORDER BY priority DESC, deadline IS NULL, deadline, id LIMIT :n FOR UPDATE SKIP LOCKED),
         lapsed_first AS (... WHERE status = 'claimed' AND batch_id IS NULL AND claimed_at < :stale ...)
    UPDATE task SET status='claimed', claimed_by=:worker, claimed_at=:now, claims=claims+1
    WHERE id = ANY(ARRAY(SELECT id FROM (queued_first UNION ALL lapsed_first) ORDER BY ... LIMIT :n))
      AND <claimable>

The queued half reads a partial index already in claim order and the lapsed half a partial index of the
few unsent claims (0008), so a claim reads about n rows however many are queued. On PostgreSQL
``FOR UPDATE SKIP LOCKED`` lets concurrent claimers take disjoint rows without waiting, and the repeated
condition makes a row whose claim committed meanwhile drop out. SQLite ignores ``FOR UPDATE`` (and takes
``id IN (...)``); there the single ``UPDATE`` holds the database's write lock from its read to its write,
so it is atomic too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    any_,
    case,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col

from nightbatch.db.engine import dialect_name
from nightbatch.db.models import Task, TaskStatus, metadata

__all__ = [
    "POISON_MESSAGE",
    "ClaimedTask",
    "TaskFailure",
    "claim_tasks",
    "fail_claimed",
    "queued_outside",
    "release_tasks",
    "renew_leases",
]

log = logging.getLogger(__name__)

_TASK: Table = metadata.tables["task"]
_IDS_PER_STATEMENT = 1000
POISON_MESSAGE = "claimed {n} times without its request ever being sent: it may be what kills its workers"


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


def _chunks(ids: Iterable[int]) -> Iterable[Sequence[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), _IDS_PER_STATEMENT):
        yield unique[start : start + _IDS_PER_STATEMENT]


# -- claim, poison, release, lease -------------------------------------------------------------------


def claim_tasks(
    engine: Engine,
    n: int,
    worker: str,
    *,
    now: datetime,
    stale_before: datetime,
    task_types: Collection[str] | None,
    poison_claims: int,
) -> list[ClaimedTask]:
    """Move up to ``n`` claimable tasks to ``claimed`` by ``worker`` in one statement; fail the poisoned.

    Claimable: ``queued``, or ``claimed`` before ``stale_before`` and not yet linked to a batch (once
    linked the task may be at the provider, and only the batch's reconciliation may free it). A picked
    task now claimed more than ``poison_claims`` times is failed as ``poison`` in the same transaction
    and not returned. Returns the others in no particular order.
    """
    of_types: list[ColumnElement[bool]] = [] if task_types is None else [_TASK.c.task_type.in_(sorted(task_types))]
    queued = _status_is(TaskStatus.QUEUED)
    lapsed = and_(_status_is(TaskStatus.CLAIMED), _TASK.c.batch_id.is_(None), _TASK.c.claimed_at < stale_before)
    claimable = [or_(queued, lapsed), *of_types]
    postgresql = dialect_name(engine) == "postgresql"
    # Two short lists merged, not one sort of every claimable row: the queued half reads its index in claim
    # order and stops after n rows, the lapsed half sorts the few unsent claims (models/queue.py). On
    # PostgreSQL each half locks what it reads (SKIP LOCKED), so a row of one half that the merge leaves out
    # stays locked, unclaimed, until this short transaction ends: other claimers pass over it meanwhile.
    halves = [
        _first_in_claim_order(queued, of_types, n, lock=postgresql).cte("queued_first"),
        _first_in_claim_order(lapsed, of_types, n, lock=postgresql).cte("lapsed_first"),
    ]
    merged = union_all(*(select(half) for half in halves)).subquery("claimable")
    pick = select(merged.c.id).order_by(*_claim_order(merged.c)).limit(n)
    picked: ColumnElement[bool]
    if postgresql:
        # id = ANY(ARRAY(subquery)) runs the subquery once, as an InitPlan. With a plain IN (subquery) the
        # planner may pick a semi-join that rescans the subquery per row, and each rescan skips the rows
        # this very statement just updated and locks *further* ones: more than n rows get claimed.
        picked = _TASK.c.id == any_(func.array(pick.scalar_subquery(), type_=ARRAY(BigInteger())))
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
            _fail_poisoned(conn, poisoned, worker, poison_claims, now)
    kept = (row._asdict() for row in rows if row.id not in poisoned)
    return [ClaimedTask(**{k: v for k, v in row.items() if k != "claims"}) for row in kept]


def _status_is(status: TaskStatus) -> ColumnElement[bool]:
    """``status = '<status>'`` with the value written into the SQL: a partial index's predicate is matched
    against the statement's text, so with a bound parameter it may go unused (always on SQLite without
    statistics, and on PostgreSQL under a generic plan)."""
    return _TASK.c.status == literal_column(f"'{status.value}'")


def _claim_order(columns: Any) -> list[ColumnElement[Any]]:
    """The order tasks are claimed in: priority first, then the nearest deadline (none last), then age.

    Spelled as ix_task_queued_claim_order's columns are (models/queue.py), so both databases read that index.
    """
    return [columns.priority.desc(), columns.deadline.is_(None), columns.deadline, columns.id]


def _first_in_claim_order(
    condition: ColumnElement[bool], of_types: list[ColumnElement[bool]], n: int, *, lock: bool
) -> Select[Any]:
    first = (
        select(_TASK.c.id, _TASK.c.priority, _TASK.c.deadline)
        .where(condition, *of_types)
        .order_by(*_claim_order(_TASK.c))
        .limit(n)
    )
    return first.with_for_update(skip_locked=True) if lock else first


def _fail_poisoned(conn: Connection, ids: list[int], worker: str, poison_claims: int, now: datetime) -> None:
    message = POISON_MESSAGE.format(n=poison_claims)
    conn.execute(
        update(_TASK)
        .where(_TASK.c.id.in_(ids), _held_by(worker))
        .values(
            status=TaskStatus.FAILED,
            error_type="poison",
            error_message=message,
            claimed_by=None,
            claimed_at=None,
            updated_at=now,
        )
    )
    log.error("tasks %s failed as poison: %s", ids, message)


def release_tasks(engine: Engine, task_ids: Iterable[int], worker: str, *, count_attempt: bool) -> list[int]:
    """Tasks ``worker`` still holds back to ``queued``, their claim taken back; the ids released, sorted.

    ``count_attempt``: the worker did send the request (and failed), so an attempt is counted.
    """
    return _update_held(
        engine,
        task_ids,
        worker,
        status=TaskStatus.QUEUED,
        claimed_by=None,
        claimed_at=None,
        attempts=_TASK.c.attempts + 1 if count_attempt else _TASK.c.attempts,
        claims=case((_TASK.c.claims > 0, _TASK.c.claims - 1), else_=0),
    )


def renew_leases(engine: Engine, task_ids: Iterable[int], worker: str, *, now: datetime) -> list[int]:
    """Set ``claimed_at = now`` on the tasks ``worker`` still holds; their ids, sorted."""
    return _update_held(engine, task_ids, worker, claimed_at=now)


def _held_by(worker: str) -> ColumnElement[bool]:
    """Still claimed by ``worker``: the compare-and-set of every write a claimer makes to its tasks."""
    return and_(_TASK.c.status == TaskStatus.CLAIMED, _TASK.c.claimed_by == worker)


def _update_held(engine: Engine, task_ids: Iterable[int], worker: str, **values: Any) -> list[int]:
    """Set ``values`` on those of ``task_ids`` that ``worker`` still holds (one transaction); their ids, sorted."""
    done: list[int] = []
    with engine.begin() as conn:
        for ids in _chunks(task_ids):
            stmt = update(_TASK).where(_TASK.c.id.in_(ids), _held_by(worker)).values(**values).returning(_TASK.c.id)
            done.extend(conn.execute(stmt).scalars())
    return sorted(done)


# -- fail unsent, and what a claim leaves ------------------------------------------------------------


class TaskFailure(Protocol):
    """Why one claimed task fails before it is sent (e.g. :class:`nightbatch.submit.plan.BuildFailure`)."""

    @property
    def task_id(self) -> int: ...
    @property
    def error_type(self) -> str: ...
    @property
    def message(self) -> str: ...


def fail_claimed(engine: Engine, failures: Iterable[TaskFailure], worker: str, *, now: datetime) -> None:
    """Fail the tasks ``worker`` still holds whose request could not be built or sent (one transaction).

    A compare-and-set on ``status = 'claimed'`` by ``worker``: a task no longer held (its claim lapsed and it
    moved on, or another worker has claimed it since) is left alone.
    """
    failures = list(failures)
    if not failures:
        return
    with engine.begin() as conn:
        for failure in failures:
            conn.execute(
                update(Task)
                .where(col(Task.id) == failure.task_id, _held_by(worker))
                .values(
                    status=TaskStatus.FAILED,
                    error_type=failure.error_type,
                    error_message=failure.message[:2000],
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=now,
                )
            )


# A claim takes only the types its worker has a config for (``task_types`` above); this counts what it leaves.
def queued_outside(engine: Engine, task_types: Collection[str]) -> dict[str, int]:
    """Queued tasks by type, for the types not in ``task_types``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.task_type), func.count())
            .where(col(Task.status) == TaskStatus.QUEUED, col(Task.task_type).not_in(sorted(task_types)))
            .group_by(col(Task.task_type))
        ).all()
    return {str(t): int(n) for t, n in rows}
