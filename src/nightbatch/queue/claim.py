"""Claiming tasks for a worker: atomic, lease-based, safe under concurrent workers.

A task is *claimable* when it is ``queued``, or ``claimed`` with a lease (``claimed_at``) older than
``lease_seconds``: its worker died. :func:`claim` moves up to ``n`` claimable tasks to ``claimed`` in one
statement (:func:`nightbatch.db.task_claims.claim_tasks`, which shows it and why it is atomic on SQLite and on
PostgreSQL); this module checks the arguments, sets the lease and orders what it returns.

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

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from nightbatch.db import Engine
from nightbatch.db.models import WORKER_MAX_LENGTH, utcnow
from nightbatch.db.task_claims import ClaimedTask, claim_tasks, release_tasks, renew_leases

__all__ = ["DEFAULT_LEASE_SECONDS", "DEFAULT_POISON_CLAIMS", "ClaimedTask", "claim", "release", "renew_lease"]

DEFAULT_LEASE_SECONDS = 900
DEFAULT_POISON_CLAIMS = 3


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
    claimed = claim_tasks(
        engine,
        n,
        worker,
        now=now,
        stale_before=now - timedelta(seconds=lease_seconds),
        task_types=task_types,
        poison_claims=poison_claims,
    )
    return sorted(claimed, key=_sort_key)


def release(engine: Engine, task_ids: Iterable[int], worker: str, *, count_attempt: bool = False) -> list[int]:
    """Put tasks that ``worker`` holds back to ``queued``; returns the ids actually released.

    Tasks this worker no longer holds (reclaimed after its lease expired, or moved on) are left alone.
    A release is a live worker handing a task back, so the claim is taken back from ``claims`` and no
    attempt is counted, unless ``count_attempt`` (the worker did send it, and failed).
    """
    _check_worker(worker)
    return release_tasks(engine, task_ids, worker, count_attempt=count_attempt)


def renew_lease(engine: Engine, task_ids: Iterable[int], worker: str, *, now: datetime | None = None) -> list[int]:
    """Extend ``worker``'s lease on tasks it still holds; returns their ids. Missing ids were lost."""
    _check_worker(worker)
    return renew_leases(engine, task_ids, worker, now=now or utcnow())
