"""Task state transitions of the queue: insert (idempotent), claim, poison, release, renew a lease.

Every statement that moves a task between ``queued`` and ``claimed`` (or fails it as poison at claim)
is here; :mod:`nightbatch.queue` keeps the decisions (validating task files, chunking, the order a
caller sees) and calls these. See :mod:`nightbatch.queue.claim` for the lease, the ``claims`` counter
and the poison rule, and :mod:`nightbatch.queue.enqueue` for idempotency keys and conflicts.

The claim is one ``UPDATE ... RETURNING``::

    WITH queued_first AS (SELECT id, priority, deadline FROM task WHERE status = 'queued'
                          ORDER BY priority DESC, deadline NULLS LAST, id LIMIT :n FOR UPDATE SKIP LOCKED),
         lapsed_first AS (... WHERE status = 'claimed' AND batch_id IS NULL AND claimed_at < :stale ...)
    UPDATE task SET status='claimed', claimed_by=:worker, claimed_at=:now, claims=claims+1
    WHERE id = ANY(ARRAY(SELECT id FROM (queued_first UNION ALL lapsed_first) ORDER BY ... LIMIT :n))
      AND <claimable>

Each half reads a partial index already in claim order (0008), so a claim reads about n rows however
many are queued. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers take disjoint rows
without waiting, and the repeated condition makes a row whose claim committed meanwhile drop out. SQLite
ignores ``FOR UPDATE`` (and takes ``id IN (...)``); there the single ``UPDATE`` holds the database's
write lock from its read to its write, so it is atomic too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    any_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col

from nightbatch.db.engine import dialect_name, insert_ignoring_conflicts
from nightbatch.db.models import Task, TaskStatus, UTCDateTime, metadata
from nightbatch.db.task_conflicts import conflicting, replace_queued
from nightbatch.errors import StateError

__all__ = [
    "POISON_MESSAGE",
    "ChunkResult",
    "ClaimedTask",
    "NewTask",
    "TaskInserter",
    "claim_tasks",
    "insert_task",
    "inserting_tasks",
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


class NewTask(Protocol):
    """What an insert needs of a task (:class:`nightbatch.queue.taskfile.TaskSpec` is one)."""

    @property
    def task_type(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def key(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def deadline(self) -> datetime | None: ...
    @property
    def model_override(self) -> str | None: ...


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
    queued = _TASK.c.status == TaskStatus.QUEUED
    lapsed = and_(_TASK.c.status == TaskStatus.CLAIMED, _TASK.c.batch_id.is_(None), _TASK.c.claimed_at < stale_before)
    claimable = [or_(queued, lapsed), *of_types]
    postgresql = dialect_name(engine) == "postgresql"
    # Two short lists merged, not one sort of every claimable row: each half reads its own partial index in
    # claim order (models: ix_task_queued_claim_order, ix_task_unsent_claims) and stops after n rows. On
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


def _claim_order(columns: Any) -> list[ColumnElement[Any]]:
    """The order tasks are claimed in: priority first, then the nearest deadline (none last), then age."""
    return [columns.priority.desc(), columns.deadline.asc().nulls_last(), columns.id]


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
        .where(_TASK.c.id.in_(ids), _TASK.c.claimed_by == worker)
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
    attempts = _TASK.c.attempts + 1 if count_attempt else _TASK.c.attempts
    released: list[int] = []
    with engine.begin() as conn:
        for ids in _chunks(task_ids):
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


def renew_leases(engine: Engine, task_ids: Iterable[int], worker: str, *, now: datetime) -> list[int]:
    """Set ``claimed_at = now`` on the tasks ``worker`` still holds; their ids, sorted."""
    renewed: list[int] = []
    with engine.begin() as conn:
        for ids in _chunks(task_ids):
            stmt = (
                update(_TASK)
                .where(_TASK.c.id.in_(ids), _TASK.c.status == TaskStatus.CLAIMED, _TASK.c.claimed_by == worker)
                .values(claimed_at=now)
                .returning(_TASK.c.id)
            )
            renewed.extend(conn.execute(stmt).scalars())
    return sorted(renewed)


# -- insert ------------------------------------------------------------------------------------------


def _row(task: NewTask, source: str | None, now: datetime) -> dict[str, Any]:
    return {
        "task_type": task.task_type,
        "payload": task.payload,
        "idempotency_key": task.key,
        "status": TaskStatus.QUEUED,
        "attempts": 0,
        "priority": task.priority,
        "deadline": task.deadline,
        "model_override": task.model_override,
        "source": source,
        "user_canceled": False,
        "created_at": now,
        "updated_at": now,
    }


def insert_task(engine: Engine, task: NewTask, *, source: str | None, now: datetime) -> tuple[int, bool]:
    """Insert ``task`` as ``queued`` unless its key exists: ``(task id, inserted)``; the existing row is
    left exactly as it is."""
    with engine.begin() as conn:
        stmt = insert_ignoring_conflicts(_TASK, dialect_name(conn), ["idempotency_key"])
        new_id = conn.execute(stmt.values(_row(task, source, now)).returning(_TASK.c.id)).scalar()
        if new_id is not None:
            return int(new_id), True
        existing = conn.execute(select(_TASK.c.id).where(_TASK.c.idempotency_key == task.key)).scalar()
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish without a delete
        raise StateError(f"task with key {task.key!r} conflicted on insert but cannot be found")
    return int(existing), False


# A chunk travels as ONE parameter, a JSON array of rows that the database unpacks itself. Binding
# thousands of rows x columns as separate parameters costs far more client CPU (psycopg parses every
# placeholder of a huge statement in Python) than the database's JSON functions do.
_COLUMNS = (
    "task_type, payload, idempotency_key, priority, deadline, model_override,"
    " status, attempts, source, user_canceled, created_at, updated_at"
)
_BULK_INSERT = {
    "postgresql": f"""
        INSERT INTO task ({_COLUMNS})
        SELECT r.t, r.p, r.k, r.pr, r.d, r.m, :status, 0, :source, false, :now, :now
        FROM json_to_recordset(CAST(:rows AS json))
            AS r(t varchar, p json, k varchar, pr integer, d timestamptz, m varchar)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING task_type, idempotency_key""",
    "sqlite": f"""
        INSERT INTO task ({_COLUMNS})
        SELECT json_extract(value, '$.t'), json_extract(value, '$.p'), json_extract(value, '$.k'),
               json_extract(value, '$.pr'), json_extract(value, '$.d'), json_extract(value, '$.m'),
               :status, 0, :source, 0, :now, :now
        FROM json_each(:rows)
        WHERE true  -- SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING task_type, idempotency_key""",
}


@dataclass(frozen=True)
class ChunkResult:
    """What one chunk insert did: the types of the rows inserted, the conflicting keys, how many replaced."""

    inserted_types: list[str]
    conflicts: list[str]
    replaced: int


# A load at least this large refreshes the planner's statistics of the task table (a sample; well under a second).
ANALYZE_AFTER_INSERTING = 10_000


class TaskInserter:
    """Inserts chunks of tasks inside one open transaction (see :func:`inserting_tasks`)."""

    def __init__(self, conn: Connection, source: str, now: datetime, encode: Callable[[Any], str]) -> None:
        self._conn = conn
        self._encode = encode
        self._insert = text(_BULK_INSERT[conn.dialect.name]).bindparams(bindparam("now", type_=UTCDateTime()))
        self._params = {"status": TaskStatus.QUEUED.value, "source": source, "now": now}
        self.inserted = 0
        # dialect_impl: the text SQLite's DateTime really stores, so bulk and ORM inserts sort alike.
        dialect = conn.dialect
        self._store_datetime: Callable[[Any], Any] = UTCDateTime().dialect_impl(dialect).bind_processor(dialect) or (
            lambda value: value
        )

    def encode(self, task: NewTask) -> str:
        """One task as a JSON object of the chunk parameter; its deadline as the column type stores it."""
        deadline = None
        if task.deadline is not None:  # UTC text on SQLite, ISO 8601 for PostgreSQL
            stored = self._store_datetime(task.deadline)
            deadline = stored.isoformat() if isinstance(stored, datetime) else str(stored)
        return self._encode(
            {"t": task.task_type, "p": task.payload, "k": task.key, "pr": task.priority, "d": deadline,
             "m": task.model_override}
        )  # fmt: skip

    def insert(self, chunk: Sequence[NewTask], encoded: str, *, replace: bool) -> ChunkResult:
        """Insert ``chunk`` (``encoded``: the JSON array of its :meth:`encode` rows), skipping keys already
        there; keys there for a *different* task are conflicts, replaced when ``replace`` and still queued."""
        returned = self._conn.execute(self._insert, {**self._params, "rows": encoded}).all()
        types = [str(r[0]) for r in returned]
        self.inserted += len(types)
        if len(returned) == len(chunk):
            return ChunkResult(types, [], 0)
        # Keys already there: a re-run (same task) is fine; the same key for a different task is not.
        new = {str(r[1]) for r in returned}
        old = {task.key: task for task in chunk if task.key not in new}
        clashing = conflicting(self._conn, {k: (t.task_type, t.payload) for k, t in old.items()}, self._encode)
        replaced = 0
        if replace and clashing:
            replaced = replace_queued(self._conn, [_replacement(old[key]) for key in clashing])
        return ChunkResult(types, clashing, replaced)


def _replacement(task: NewTask) -> dict[str, Any]:
    return {"key": task.key, "task_type": task.task_type, "payload": task.payload, "priority": task.priority,
            "deadline": task.deadline, "model_override": task.model_override}  # fmt: skip


@contextmanager
def inserting_tasks(
    engine: Engine, *, source: str, now: datetime, encode: Callable[[Any], str]
) -> Iterator[TaskInserter]:
    """One transaction for a whole task file: committed on leaving, rolled back if the body raises.

    ``encode`` serializes JSON (the queue's canonical form), for the chunk parameter and for comparing
    payloads of conflicting keys.
    """
    with engine.begin() as conn:
        inserter = TaskInserter(conn, source, now, encode)
        yield inserter
    if inserter.inserted >= ANALYZE_AFTER_INSERTING:
        # The planner's row counts are otherwise those of before the load until autovacuum's next analyze
        # (a minute or more away): believing a few hundred tasks queued, PostgreSQL sorts all million
        # instead of reading the claim-order index (2 s per claim instead of 0.2 s, measured at 1M).
        with engine.begin() as conn:
            conn.execute(text("ANALYZE task"))


# The task side of submitting: linking claimed tasks to their pending batch row, what a create's outcome
# does to them, and failing tasks whose request could not be built. Every write is a compare-and-set on
# ``status = 'claimed'`` (and the claimer where it matters): a task the worker no longer holds is left alone.
# The ``conn`` functions run inside the caller's transaction (a batch transition of :mod:`nightbatch.db.batches`).

_LINKED = (col(Task.status) == TaskStatus.CLAIMED,)
_CLAIM_BACK = case((col(Task.claims) > 0, col(Task.claims) - 1), else_=0)  # a live worker's claim is no death


class TaskFailure(Protocol):
    """Why one claimed task fails before it is sent (e.g. :class:`nightbatch.submit.plan.BuildFailure`)."""

    @property
    def task_id(self) -> int: ...
    @property
    def error_type(self) -> str: ...
    @property
    def message(self) -> str: ...


def mark_batch_submitted(conn: Connection, batch_id: int, *, now: datetime) -> None:
    """The batch's create was accepted: its claimed tasks are ``submitted``.

    This is where an attempt counts (not at claim, so a worker that dies before sending burns no retry),
    and the task's count of dead claims starts over.
    """
    conn.execute(
        update(Task)
        .where(col(Task.batch_id) == batch_id, *_LINKED)
        .values(
            status=TaskStatus.SUBMITTED,
            attempts=col(Task.attempts) + 1,
            claims=0,
            claimed_by=None,
            claimed_at=None,
            updated_at=now,
        )
    )


def requeue_unsent(conn: Connection, batch_id: int, *, worker_died: bool, now: datetime) -> None:
    """The batch was never created: its claimed tasks go back to ``queued``, unlinked, with no attempt counted.

    The claim is taken back from ``claims`` unless ``worker_died``: those deaths count towards the poison
    rule (:mod:`nightbatch.queue.claim`).
    """
    conn.execute(
        update(Task)
        .where(col(Task.batch_id) == batch_id, *_LINKED)
        .values(
            status=TaskStatus.QUEUED,
            claims=col(Task.claims) if worker_died else _CLAIM_BACK,
            batch_id=None,
            custom_id=None,
            claimed_by=None,
            claimed_at=None,
            updated_at=now,
        )
    )


def hand_over_claims(engine: Engine, batch_id: int) -> None:
    """A live worker leaves its pending row to the reconciler: its tasks' claim is not a death (poison rule)."""
    with engine.begin() as conn:
        conn.execute(update(Task).where(col(Task.batch_id) == batch_id, *_LINKED).values(claims=_CLAIM_BACK))


def fail_claimed(engine: Engine, failures: Iterable[TaskFailure], *, now: datetime) -> None:
    """Fail claimed tasks whose request could not be built or sent (one transaction)."""
    failures = list(failures)
    if not failures:
        return
    with engine.begin() as conn:
        for failure in failures:
            conn.execute(
                update(Task)
                .where(col(Task.id) == failure.task_id, *_LINKED)
                .values(
                    status=TaskStatus.FAILED,
                    error_type=failure.error_type,
                    error_message=failure.message[:2000],
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=now,
                )
            )


def flag_user_canceled(conn: Connection, batch_id: int, *, now: datetime) -> None:
    """A user canceled the batch: its tasks end ``canceled`` when it is ingested (not retried)."""
    conn.execute(update(Task).where(col(Task.batch_id) == batch_id).values(user_canceled=True, updated_at=now))


def queued_outside(engine: Engine, task_types: Collection[str]) -> dict[str, int]:
    """Queued tasks by type, for the types not in ``task_types``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.task_type), func.count())
            .where(col(Task.status) == TaskStatus.QUEUED, col(Task.task_type).not_in(sorted(task_types)))
            .group_by(col(Task.task_type))
        ).all()
    return {str(t): int(n) for t, n in rows}


# Settling what an ingest did not hear of, and calibration's samples.


class UnsettledTask(NamedTuple):
    """A task still ``submitted`` in a batch whose results were all read: ingest decides what becomes of it."""

    id: int
    attempts: int
    route_model: str | None
    custom_id: str | None


def unsettled_tasks(conn: Connection, batch_id: int) -> list[UnsettledTask]:
    """Tasks of ``batch_id`` still ``submitted`` (the results never mentioned them), in the caller's transaction."""
    rows = conn.execute(
        select(col(Task.id), col(Task.attempts), col(Task.route_model), col(Task.custom_id)).where(
            col(Task.batch_id) == batch_id, col(Task.status) == TaskStatus.SUBMITTED
        )
    ).all()
    return [UnsettledTask(r.id, r.attempts, r.route_model, r.custom_id) for r in rows]


def first_tasks_of_type(engine: Engine, task_type: str, limit: int) -> list[tuple[int, dict[str, Any]]]:
    """``(id, payload)`` of the first ``limit`` tasks of a type (lowest ids, any status): a calibration's sample."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.id), col(Task.payload))
            .where(col(Task.task_type) == task_type)
            .order_by(col(Task.id))
            .limit(limit)
        ).all()
    return [(int(r[0]), r[1]) for r in rows]


def payloads_of_type(engine: Engine, task_type: str) -> dict[int, dict[str, Any]]:
    """Every task's payload of a type, by task id."""
    with engine.connect() as conn:
        rows = conn.execute(select(col(Task.id), col(Task.payload)).where(col(Task.task_type) == task_type))
        return {int(task_id): payload for task_id, payload in rows}
