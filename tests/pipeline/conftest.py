"""Pipeline helpers: the example workload, enqueued into the test database."""

from __future__ import annotations

import itertools
import json

from sqlalchemy import Engine

from nightbatch.queue.enqueue import enqueue
from nightbatch.services import Services
from nightbatch.tasktypes import CachePolicy, TaskTypeRegistry
from tests.fixtures.services import EXAMPLES, make_services

__all__ = ["EXAMPLES", "enqueue_examples", "example_tasks", "make_services", "without_caching"]


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


def without_caching(services: Services) -> Services:
    """Every task type with caching off: for tests of what is not caching, where one submit sends every task
    (with caching, a cold group first sends a one-task pilot and the rest waits; see test_pilot.py)."""
    off = CachePolicy(mode="off")
    services.registry = TaskTypeRegistry([t.model_copy(update={"cache": off}) for t in services.registry])
    return services
