"""The queue stage: tasks go in (:func:`enqueue`, :func:`enqueue_jsonl`) and workers take them out
(:func:`claim`, with :func:`renew_lease` and :func:`release`).

Everything here is idempotent or atomic: enqueueing is keyed by an idempotency key, a task file is
enqueued all or nothing, and a claim hands each task to exactly one worker at a time.
"""

from __future__ import annotations

from nightbatch.queue.claim import DEFAULT_LEASE_SECONDS, ClaimedTask, claim, release, renew_lease
from nightbatch.queue.enqueue import EnqueueReport, EnqueueResult, TypeCounts, enqueue, enqueue_jsonl
from nightbatch.queue.taskfile import TaskFileReader, TaskSource, TaskSpec, default_key

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "ClaimedTask",
    "EnqueueReport",
    "EnqueueResult",
    "TaskFileReader",
    "TaskSource",
    "TaskSpec",
    "TypeCounts",
    "claim",
    "default_key",
    "enqueue",
    "enqueue_jsonl",
    "release",
    "renew_lease",
]
