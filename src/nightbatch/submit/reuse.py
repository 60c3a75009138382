"""Response reuse across runs: a request identical to one answered within the type's window is not sent.

Opt-in per task type (``reuse_responses = "7d"``) and off by default: a model's output is not
deterministic, so serving yesterday's answer is a choice the type's owner makes (a classification of an
unchanged ticket, say), not one nightbatch makes for them. A served task is ``succeeded`` with the stored
output (the same shard line), a ``task_twin`` row of kind ``reuse`` naming the task and batch that
answered it, and no usage row: it cost nothing. Its pipeline stages are enqueued in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from nightbatch import custom_ids
from nightbatch.build.requests import BuiltRequest
from nightbatch.db.engine import transaction
from nightbatch.db.twins import find_reusable, serve_reused
from nightbatch.pipeline.downstream import Downstream, stored_output
from nightbatch.pipeline.graph import StageGraph
from nightbatch.services import Services
from nightbatch.submit.dedup import request_digest

__all__ = ["serve_from_earlier_answers"]


def serve_from_earlier_answers(
    services: Services, requests: list[BuiltRequest], payloads: Mapping[int, dict[str, Any]], now: datetime
) -> tuple[list[BuiltRequest], int]:
    """Settle the requests an earlier answer serves; returns the requests still to send and how many were served.

    ``payloads``: the claimed tasks' payloads by id (what their pipeline stages are built from).
    """
    windows = {t.name: t.reuse_window_seconds for t in services.registry if t.reuse_window_seconds}
    candidates = [r for r in requests if r.task_type in windows and not custom_ids.is_shadow(r.custom_id)]
    if not candidates:
        return requests, 0
    graph = StageGraph.of(services.registry)
    served_ids: set[int] = set()
    with transaction(services.engine) as conn:
        for task_type, seconds in windows.items():
            by_digest: dict[str, list[int]] = {}
            for request in candidates:
                if request.task_type == task_type:
                    by_digest.setdefault(request_digest(request), []).append(request.task_id)
            if not by_digest:
                continue
            found = find_reusable(conn, by_digest, now - timedelta(seconds=seconds))
            served = [(task_id, answer) for digest, answer in found.items() for task_id in by_digest[digest]]
            done = set(serve_reused(conn, served, services.worker, now))
            served_ids |= done
            if task_type in graph.downstream:  # the served tasks' stages, in the same transaction
                downstream = Downstream(graph, set())
                for task_id, answer in served:
                    if task_id in done:
                        output = stored_output(
                            services.store, answer.output_inline, answer.output_uri, answer.output_line
                        )
                        downstream.note(task_id, task_type, payloads.get(task_id, {}), output)
                downstream.flush(conn, now)
    # Every request of a served task goes (its shadow too: nothing of it is sent).
    return [r for r in requests if r.task_id not in served_ids], len(served_ids)
