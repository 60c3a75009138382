"""Who held the ``nightbatch-submit`` global concurrency limit when, read back from a Prefect server.

``prefect.concurrency.sync.concurrency`` (around the submit task, ``flows/submit.py``) emits
``prefect.concurrency-limit.acquired`` once it holds a slot and ``…released`` (``follows`` the acquisition)
once it has given it back; the flow-run process attaches its flow run as a related resource. The server
persists events a few seconds after they arrive, so :func:`read_holds` waits until the holds are all in.

With the slot respected, a submitter's writes all land between its acquisition and the next submitter's:
:func:`batches_outside_their_hold` checks exactly that, with the database's batch rows, without relying on how
close the release event's timestamp is to the release itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.deployments.prefect_api import request

_EVENTS = ["prefect.concurrency-limit.acquired", "prefect.concurrency-limit.released"]


@dataclass(frozen=True)
class Hold:
    """One acquisition of a limit by one flow run, until its release (None while not yet seen)."""

    limit_name: str
    limit: int
    slots: int
    flow_run_id: str
    acquired: datetime
    released: datetime | None


def _events(api_url: str) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"filter": {"event": {"name": _EVENTS}, "order": "ASC"}, "limit": 50}
    page = request("POST", f"{api_url}/events/filter", json=body)
    page.raise_for_status()
    answer: dict[str, Any] = page.json()
    events: list[dict[str, Any]] = list(answer["events"])
    while answer.get("next_page"):
        page = request("GET", answer["next_page"])
        page.raise_for_status()
        answer = page.json()
        events += answer["events"]
    return events


def _flow_run_of(event: Mapping[str, Any]) -> str:
    for related in event.get("related", []):
        if related.get("prefect.resource.role") == "flow-run":
            return str(related["prefect.resource.id"]).removeprefix("prefect.flow-run.")
    raise AssertionError(f"concurrency event {event['id']} names no flow run: {event}")


def _holds(events: Iterable[Mapping[str, Any]]) -> list[Hold]:
    released = {e["follows"]: e for e in events if e["event"].endswith(".released") and e.get("follows")}
    holds = []
    for event in events:
        if not event["event"].endswith(".acquired"):
            continue
        resource, release = event["resource"], released.get(event["id"])
        holds.append(
            Hold(
                limit_name=resource["prefect.resource.name"],
                limit=int(resource["limit"]),
                slots=int(resource["slots-acquired"]),
                flow_run_id=_flow_run_of(event),
                acquired=datetime.fromisoformat(event["occurred"]),
                released=datetime.fromisoformat(release["occurred"]) if release else None,
            )
        )
    return sorted(holds, key=lambda h: h.acquired)


def read_holds(api_url: str, complete: Callable[[list[Hold]], bool], *, timeout: float = 30) -> list[Hold]:
    """Every hold of every limit, once each has its release and ``complete`` says none is missing.

    The server records events (and task runs) a few seconds after they happen, so both sides are read again
    until they agree or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        holds = _holds(_events(api_url))
        if all(h.released for h in holds) and complete(holds):
            return holds
        if time.monotonic() > deadline:
            hint = "" if holds else " (no submit took the slot: NIGHTBATCH_SUBMIT_CONCURRENCY_LIMIT unset on workers?)"
            raise AssertionError(f"the server's concurrency events are incomplete after {timeout}s: {holds}{hint}")
        time.sleep(0.5)


def batches_outside_their_hold(holds: list[Hold], batches: Iterable[tuple[int, str, datetime]]) -> list[str]:
    """Batches (id, flow run that created it, created at) not created during a hold of their own flow run.

    The latest acquisition before a batch was created must be its own flow run's, and that hold must not
    have been released yet: under a limit of one, nobody else could have acquired in between.
    """
    problems = []
    for batch_id, flow_run_id, created in batches:
        before = [h for h in holds if h.acquired <= created]
        holder = before[-1] if before else None
        if holder is None or holder.flow_run_id != flow_run_id:
            who = holder.flow_run_id if holder else "nobody"
            problems.append(f"batch {batch_id} of flow run {flow_run_id} created at {created}, {who} held the slot")
        elif holder.released is not None and holder.released < created:
            problems.append(f"batch {batch_id} of flow run {flow_run_id} created at {created}, after its release")
    return problems
