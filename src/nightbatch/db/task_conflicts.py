"""Idempotency-key conflicts at enqueue: the same key, a different task.

Enqueueing a key that is already there changes nothing (that is what makes re-running a file safe). But a
key whose stored task differs (another payload, type, priority, deadline or model) is not a re-run: it is
reported as a conflict, and with ``--replace`` a still-``queued`` task takes the new definition (a task
claimed, in flight or finished is never rewritten under its results).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, select, update

from nightbatch.db.models import TaskStatus, metadata, utcnow

__all__ = ["conflicting", "replace_queued"]

_TASK: Table = metadata.tables["task"]


def conflicting(conn: Connection, wanted: dict[str, tuple[Any, ...]], canonical: Any) -> list[str]:
    """Keys of ``wanted`` (key -> (task_type, payload)) whose stored task differs; ``canonical`` serializes."""
    keys = sorted(wanted)
    found: list[str] = []
    for start in range(0, len(keys), 1000):
        rows = conn.execute(
            select(_TASK.c.idempotency_key, _TASK.c.task_type, _TASK.c.payload).where(
                _TASK.c.idempotency_key.in_(keys[start : start + 1000])
            )
        )
        for key, task_type, payload in rows:
            want_type, want_payload = wanted[key]
            if task_type != want_type or canonical(payload) != canonical(want_payload):
                found.append(str(key))
    return sorted(found)


def replace_queued(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Give the ``queued`` tasks with these keys their new definition; how many were replaced."""
    replaced = 0
    now = utcnow()
    for row in rows:
        result = conn.execute(
            update(_TASK)
            .where(_TASK.c.idempotency_key == row["key"], _TASK.c.status == TaskStatus.QUEUED)
            .values(
                task_type=row["task_type"],
                payload=row["payload"],
                priority=row["priority"],
                deadline=row["deadline"],
                model_override=row["model_override"],
                updated_at=now,
            )
        )
        replaced += int(result.rowcount)
    return replaced
