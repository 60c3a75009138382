"""Flow ``nightbatch-backfill``: enqueue a whole source -> submit -> collect until done or the deadline.

Enqueueing is resumable: each file is enqueued in its own transaction and tasks are keyed by idempotency
key, so re-running a backfill that stopped half-way skips everything already queued and carries on.
The deployment ``classification-backfill`` in ``deployments/prefect.yaml`` runs it on demand. It ends
Completed or Failed by the same outcome policy as the nightly flow.
"""

from __future__ import annotations

from typing import Any

from prefect import State, flow
from pydantic import Field

from flows import names
from flows.nightly import enqueue_into
from flows.params import WaitParams
from flows.rounds import submit_and_collect, submit_only
from flows.runtime import FlowSettings, finish, tracked_run


class BackfillParams(WaitParams):
    """A one-off backfill over a source of JSONL task files."""

    source: str = Field(  # required here, optional for the nightly flow
        ..., description="JSONL file, local folder of them, s3://bucket/prefix/ or a single s3:// object."
    )
    wait: bool = Field(True, description="Wait for the batches until done or the deadline (off: hand to collect).")


@flow(name="nightbatch-backfill", flow_run_name=names.flow_run_name("backfill"))
def backfill(params: BackfillParams, settings: FlowSettings | None = None) -> State[dict[str, Any]]:
    with tracked_run("backfill", params, params.base_url, settings) as run:
        enqueued = enqueue_into(run, params.source, params.source_task_type)
        if params.wait:
            submit_and_collect(run.services, params, run.run_id, run.log,
                               deadline_minutes=params.deadline_minutes, poll_seconds=params.poll_seconds)  # fmt: skip
        else:
            submit_only(run.services, params, run.run_id, run.log)
        counts = {"enqueued": enqueued.inserted, "already_queued": enqueued.duplicates} if enqueued else {}
        return finish(run, waited=params.wait, extra=counts)
