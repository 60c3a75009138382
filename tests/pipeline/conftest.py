"""Pipeline helpers: the example workload, enqueued into the test database."""

from __future__ import annotations

import itertools
import json

from sqlalchemy import Engine

from nightbatch.queue.enqueue import enqueue
from tests.fixtures.services import EXAMPLES, make_services

__all__ = ["EXAMPLES", "enqueue_examples", "example_tasks", "make_services"]


def example_tasks(per_type: int) -> list[tuple[str, dict[str, object], str]]:
    """The first ``per_type`` tasks of each example file: (task type, payload, key)."""
    tasks = []
    for path in sorted((EXAMPLES / "tasks").glob("*.jsonl")):
        with path.open() as lines:
            for line in itertools.islice(lines, per_type):
                row = json.loads(line)
                tasks.append((path.stem, row["payload"], row["key"]))
    return tasks


def enqueue_examples(engine: Engine, per_type: int) -> list[int]:
    return [enqueue(engine, t, payload, key=key).task_id for t, payload, key in example_tasks(per_type)]
