"""What a succeeded upstream result sets off: its stage tasks, enqueued in the transaction that records it.

Ingest (:mod:`nightbatch.collect.ingest`) hands every succeeded result to a :class:`Downstream` as it
decides it (:meth:`Downstream.note`), and :meth:`Downstream.flush` writes the stage tasks whenever the
ingest's connection is free (between chunks, and before the batch is marked ingested), so they commit with
the upstream result or not at all: a crash in between leaves the batch un-ingested, and ingesting it
again makes each stage task exactly once (keys: :func:`nightbatch.db.stages.stage_key`). The same object
settles the batch's de-duplicated twins (:func:`nightbatch.db.twins.settle_twins`) and feeds their
stages too, with their leader's output and their own payload. Memory: only the notes of the chunk in
flight are held, and only for types some stage runs after.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nightbatch.db import Connection, Engine
from nightbatch.db.engine import transaction
from nightbatch.db.models import TaskStatus
from nightbatch.db.stages import StageTask, fallback_successes_without_stages, insert_stage_tasks, stage_parents
from nightbatch.db.twins import leaders_with_twins, settle_twins
from nightbatch.errors import InputError
from nightbatch.pipeline.condition import parse_condition
from nightbatch.pipeline.graph import StageGraph
from nightbatch.pipeline.payload import build_payload
from nightbatch.storage import ObjectStore

__all__ = ["Downstream", "UpstreamResult", "enqueue_fallback_stages", "stage_tasks", "stored_output"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamResult:
    """A succeeded task whose type some stage runs after."""

    task_id: int
    task_type: str
    payload: dict[str, Any]
    output: Any


def stage_tasks(graph: StageGraph, results: list[UpstreamResult], conn: Connection) -> list[StageTask]:
    """The stage tasks ``results`` set off: each downstream type whose condition holds, with its built payload."""
    wanted: list[tuple[UpstreamResult, str]] = []
    for result in results:
        for stage in graph.downstream.get(result.task_type, ()):
            spec = graph.specs[stage]
            if spec.when is None or parse_condition(spec.when).holds(result.output, result.payload):
                wanted.append((result, stage))
    if not wanted:
        return []
    parents = stage_parents(conn, {r.task_id for r, _ in wanted})
    tasks = []
    for result, stage in wanted:
        error = None
        try:
            payload = build_payload(graph.specs[stage], result.payload, result.output)
        except InputError as exc:
            payload, error = {"upstream_task_id": result.task_id}, f"stage {stage!r} of task {result.task_id}: {exc}"
        tasks.append(StageTask(result.task_id, stage, graph.root(stage), payload, parents[result.task_id], error))
    return tasks


class Downstream:
    """Collects one ingest's succeeded upstream results and writes their stage tasks in its transaction."""

    def __init__(self, graph: StageGraph, leaders: set[int]) -> None:
        self.graph = graph
        self._leaders = leaders  # tasks of this batch with de-duplicated twins: their outputs are kept
        self._kept: dict[int, Any] = {}
        self._pending: list[UpstreamResult] = []
        self.active = bool(graph) or bool(leaders)
        self.enqueued = 0
        self.twins: list[Any] = []

    @classmethod
    def start(cls, conn: Connection, graph: StageGraph, batch_id: int) -> Downstream:
        """Before the ingest's first write: which of the batch's tasks have twins waiting."""
        return cls(graph, leaders_with_twins(conn, batch_id))

    def note(self, task_id: int, task_type: str, payload: dict[str, Any], output: Any) -> None:
        """A task of the batch succeeded with ``output`` (cheap unless a stage or a twin needs it)."""
        if task_id in self._leaders:
            self._kept[task_id] = output
        if task_type in self.graph.downstream:
            self._pending.append(UpstreamResult(task_id, task_type, payload, output))

    def flush(self, conn: Connection, now: datetime) -> int:
        """Write the stage tasks of the results noted so far (the connection must be free); returns how many are new."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, []
        added = insert_stage_tasks(conn, stage_tasks(self.graph, pending, conn), now)
        self.enqueued += added
        return added

    def settle_twins(self, conn: Connection, batch_id: int, now: datetime) -> None:
        """Settle the batch's de-duplicated twins from their leaders; the succeeded ones feed their stages too."""
        if not self._leaders:
            return
        self.twins = settle_twins(conn, batch_id, now)
        for twin in self.twins:
            if twin.status == TaskStatus.SUCCEEDED and twin.leader_task_id in self._kept:
                self.note(twin.task_id, twin.task_type, twin.payload, self._kept[twin.leader_task_id])


def stored_output(store: ObjectStore, inline: Any, uri: str | None, line: int | None) -> Any:
    """A succeeded task's parsed output: inline when short, else its line of the output shard."""
    if inline is not None or uri is None or line is None:
        return inline
    key = uri.removeprefix(store.root_uri).lstrip("/")
    return json.loads(store.get_bytes(key).splitlines()[line - 1]).get("output")


FALLBACK_LOOKBACK = timedelta(days=7)


def enqueue_fallback_stages(engine: Engine, graph: StageGraph, store: ObjectStore, now: datetime) -> int:
    """The stage tasks of upstream tasks the real-time deadline fallback answered (submit runs this each round).

    The fallback records its answer on a path of its own (:mod:`nightbatch.deadline.realtime`); its stages
    are made here, at the next submit, idempotently (a fallback task whose condition rules every stage out is
    looked at again each round for :data:`FALLBACK_LOOKBACK`, and still sets nothing off).
    """
    if not graph:
        return 0
    with transaction(engine) as conn:
        found = fallback_successes_without_stages(conn, sorted(graph.downstream), now - FALLBACK_LOOKBACK)
        if not found:
            return 0
        downstream = Downstream(graph, set())
        for task in found:
            output = stored_output(store, task.output_inline, task.output_uri, task.output_line)
            downstream.note(task.task_id, task.task_type, task.payload, output)
        return downstream.flush(conn, now)
