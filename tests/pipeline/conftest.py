"""Pipeline fixtures: a Services object wired to the test database, object store and emulator."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nightbatch.config import Settings
from nightbatch.emulator import EmulatorServer
from nightbatch.pricing import load_price_table
from nightbatch.queue.enqueue import enqueue
from nightbatch.services import Services
from nightbatch.storage import ObjectStore
from nightbatch.tasktypes import load_task_types

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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


def make_services(engine: Engine, store: ObjectStore, base_url: str, *, worker: str = "worker-a") -> Services:
    settings = Settings(anthropic_api_key=None, max_attempts=3, lease_seconds=60)
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        registry=load_task_types(EXAMPLES / "nightbatch.toml"),
        prices=load_price_table(),
        worker=worker,
        base_url=base_url,
    )


@pytest.fixture
def services(engine: Engine, object_store: ObjectStore, emulator: EmulatorServer) -> Iterator[Services]:
    built = make_services(engine, object_store, emulator.base_url)
    yield built
    if built._client is not None:
        built._client.close()
