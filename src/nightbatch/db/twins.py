"""Twins: tasks answered by another task's request, de-duplicated in one submit or reused from an earlier one.

De-duplication (:mod:`nightbatch.submit.dedup`): of identical requests in one submit only the leader is
sent; once its batch is created, :func:`link_twins` moves the others to ``submitted`` in the leader's batch
(no custom_id of their own) with a ``task_twin`` row, and ingest settles them from the leader's outcome
(:func:`settle_twins`, in the ingest transaction): the leader's output when it succeeded, its failure when
the request itself failed (its output failed the last rung's checks, or the request was invalid), and
back to the queue otherwise. A twin never has a usage row: it cost nothing.

Reuse (:mod:`nightbatch.submit.reuse`): :func:`record_digests` keeps the digest of each sent request of a
type with ``reuse_responses``; :func:`find_reusable` finds a succeeded answer to the same digest whose batch
ended within the window, and :func:`serve_reused` settles a claimed task from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, update

from nightbatch.db.engine import insert_ignoring_conflicts
from nightbatch.db.models import (
    Batch,
    BatchStatus,
    RequestDigest,
    Task,
    TaskStatus,
    TaskTwin,
    TwinKind,
)

__all__ = [
    "Reusable",
    "SettledTwin",
    "find_reusable",
    "link_twins",
    "record_digests",
    "serve_reused",
    "settle_twins",
]

_TASK: Table = Task.__table__  # type: ignore[attr-defined]
_BATCH: Table = Batch.__table__  # type: ignore[attr-defined]
_TWIN: Table = TaskTwin.__table__  # type: ignore[attr-defined]
_DIGEST: Table = RequestDigest.__table__  # type: ignore[attr-defined]
# A leader's failure its twin shares: the identical request would fail the same way.
_SHARED_FAILURES = ("output_check", "invalid_request_error")
_LIVE = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELING, BatchStatus.ENDED)


def link_twins(
    engine: Engine, batch_id: int, twins: Mapping[int, Sequence[int]], worker: str, now: datetime
) -> list[int]:
    """Link each leader's twins (``leader id -> twin ids``, claimed by ``worker``) to the leader's batch.

    Only leaders sent in ``batch_id`` (``submitted`` in it) and a batch not yet ingested take twins; returns
    the twins linked. The caller gives the others back to the queue.
    """
    wanted = {leader: list(ids) for leader, ids in twins.items() if ids}
    if not wanted:
        return []
    with engine.begin() as conn:
        live = conn.execute(
            select(_BATCH.c.id).where(_BATCH.c.id == batch_id, _BATCH.c.status.in_([s.value for s in _LIVE]))
        ).first()
        if live is None:
            return []
        sent = set(
            conn.execute(
                select(_TASK.c.id).where(
                    _TASK.c.id.in_(sorted(wanted)),
                    _TASK.c.batch_id == batch_id,
                    _TASK.c.status == TaskStatus.SUBMITTED.value,
                )
            ).scalars()
        )
        linked: list[int] = []
        links: list[dict[str, Any]] = []
        for leader in sorted(sent):
            moved = conn.execute(
                update(_TASK)
                .where(
                    _TASK.c.id.in_(wanted[leader]),
                    _TASK.c.status == TaskStatus.CLAIMED.value,
                    _TASK.c.claimed_by == worker,
                )
                .values(
                    status=TaskStatus.SUBMITTED,
                    batch_id=batch_id,
                    custom_id=None,
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=now,
                )
                .returning(_TASK.c.id)
            ).scalars()
            for twin in moved:
                linked.append(int(twin))
                links.append({"task_id": int(twin), "leader_task_id": leader, "batch_id": batch_id,
                              "kind": TwinKind.DEDUP, "created_at": now})  # fmt: skip
        if links:
            conn.execute(insert_ignoring_conflicts(_TWIN, conn.dialect.name, ["task_id", "batch_id"]).values(links))
    return sorted(linked)


@dataclass(frozen=True)
class SettledTwin:
    """A twin settled by ingest: its new status, and what a downstream stage needs of it."""

    task_id: int
    leader_task_id: int
    task_type: str
    payload: dict[str, Any]
    status: TaskStatus


def leaders_with_twins(conn: Connection, batch_id: int) -> set[int]:
    """The tasks of ``batch_id`` that have de-duplicated twins waiting for their result."""
    return {
        int(leader)
        for leader in conn.execute(
            select(_TWIN.c.leader_task_id).where(_TWIN.c.batch_id == batch_id, _TWIN.c.kind == TwinKind.DEDUP.value)
        ).scalars()
    }


def settle_twins(conn: Connection, batch_id: int, now: datetime) -> list[SettledTwin]:
    """Settle the twins waiting in ``batch_id`` from their leaders' outcomes (module docstring), in ``conn``."""
    twin, leader = _TASK.alias("twin"), _TASK.alias("leader")
    rows = conn.execute(
        select(
            twin.c.id,
            twin.c.task_type,
            twin.c.payload,
            leader.c.id,
            leader.c.status,
            leader.c.batch_id,
            leader.c.output_uri,
            leader.c.output_line,
            leader.c.output_inline,
            leader.c.model,
            leader.c.route_model,
            leader.c.error_type,
            leader.c.error_message,
        )
        .select_from(_TWIN.join(twin, twin.c.id == _TWIN.c.task_id).join(leader, leader.c.id == _TWIN.c.leader_task_id))
        .where(
            _TWIN.c.batch_id == batch_id,
            _TWIN.c.kind == TwinKind.DEDUP.value,
            twin.c.batch_id == batch_id,
            twin.c.status == TaskStatus.SUBMITTED.value,
            twin.c.custom_id.is_(None),
        )
    ).all()
    settled: list[SettledTwin] = []
    for r in rows:
        (twin_id, task_type, payload, leader_id, status, leader_batch, uri, line, inline, model, route,
         error_type, error_message) = r  # fmt: skip
        in_batch = leader_batch == batch_id
        values: dict[str, Any]
        if in_batch and status == TaskStatus.SUCCEEDED:
            values = {"status": TaskStatus.SUCCEEDED, "output_uri": uri, "output_line": line, "output_inline": inline,
                      "model": model, "route_model": route, "error_type": None, "error_message": None}  # fmt: skip
        elif in_batch and status == TaskStatus.FAILED and error_type in _SHARED_FAILURES:
            why = f"(the same request as task {leader_id}) {error_message or ''}"[:2000]
            values = {"status": TaskStatus.FAILED, "model": model, "route_model": route, "error_type": error_type,
                      "error_message": why}  # fmt: skip
        else:  # the leader goes round again, or was canceled: the twin is queued to be sent (or joined) anew
            values = {"status": TaskStatus.QUEUED, "batch_id": None, "route_model": route}
        conn.execute(
            update(_TASK)
            .where(_TASK.c.id == twin_id, _TASK.c.batch_id == batch_id, _TASK.c.status == TaskStatus.SUBMITTED.value)
            .values(**values, updated_at=now)
        )
        settled.append(SettledTwin(int(twin_id), int(leader_id), str(task_type), payload, TaskStatus(values["status"])))
    return settled


def record_digests(engine: Engine, batch_id: int, digests: Iterable[tuple[int, str, str]], now: datetime) -> None:
    """Keep ``(task id, task type, digest)`` of requests sent in ``batch_id``, for later reuse."""
    rows = [{"task_id": t, "batch_id": batch_id, "task_type": k, "digest": d, "created_at": now} for t, k, d in digests]
    if not rows:
        return
    with engine.begin() as conn:
        conn.execute(insert_ignoring_conflicts(_DIGEST, conn.dialect.name, ["task_id", "batch_id"]).values(rows))


@dataclass(frozen=True)
class Reusable:
    """A succeeded answer to a request digest: the task and batch that answered it, and where its output is."""

    task_id: int
    batch_id: int
    output_uri: str | None
    output_line: int | None
    output_inline: Any
    model: str | None
    ended_at: datetime | None


def find_reusable(conn: Connection, digests: Iterable[str], since: datetime) -> dict[str, Reusable]:
    """For each digest, the latest succeeded answer whose batch ended at or after ``since`` (if any)."""
    wanted = sorted(set(digests))
    found: dict[str, Reusable] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(
                _DIGEST.c.digest,
                _TASK.c.id,
                _BATCH.c.id,
                _TASK.c.output_uri,
                _TASK.c.output_line,
                _TASK.c.output_inline,
                _TASK.c.model,
                _BATCH.c.ended_at,
            )
            .select_from(
                _DIGEST.join(_TASK, (_TASK.c.id == _DIGEST.c.task_id) & (_TASK.c.batch_id == _DIGEST.c.batch_id)).join(
                    _BATCH, _BATCH.c.id == _DIGEST.c.batch_id
                )
            )
            .where(
                _DIGEST.c.digest.in_(wanted[start : start + 500]),
                _TASK.c.status == TaskStatus.SUCCEEDED.value,
                _BATCH.c.ended_at >= since,
            )
            .order_by(_BATCH.c.ended_at)
        ).all()
        for digest, task_id, batch, uri, line, inline, model, ended in rows:  # later rows win: the latest answer
            found[str(digest)] = Reusable(int(task_id), int(batch), uri, line, inline, model, ended)
    return found


def serve_reused(conn: Connection, served: Sequence[tuple[int, Reusable]], worker: str, now: datetime) -> list[int]:
    """Settle each claimed task from its reusable answer (``succeeded``, no request, no cost); returns those settled."""
    done: list[int] = []
    for task_id, answer in served:
        moved = conn.execute(
            update(_TASK)
            .where(_TASK.c.id == task_id, _TASK.c.status == TaskStatus.CLAIMED.value, _TASK.c.claimed_by == worker)
            .values(
                status=TaskStatus.SUCCEEDED,
                output_uri=answer.output_uri,
                output_line=answer.output_line,
                output_inline=answer.output_inline,
                model=answer.model,
                claimed_by=None,
                claimed_at=None,
                error_type=None,
                error_message=None,
                updated_at=now,
            )
            .returning(_TASK.c.id)
        ).first()
        if moved is None:
            continue
        conn.execute(
            insert_ignoring_conflicts(_TWIN, conn.dialect.name, ["task_id", "batch_id"]).values(
                task_id=task_id,
                leader_task_id=answer.task_id,
                batch_id=answer.batch_id,
                kind=TwinKind.REUSE,
                created_at=now,
            )
        )
        done.append(task_id)
    return done
