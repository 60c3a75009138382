"""Flow ``nightbatch-backfill``: enqueue a whole source -> submit -> collect until done or the deadline.

Enqueueing is resumable: each file is enqueued in its own transaction and tasks are keyed by idempotency
key, so re-running a backfill that stopped half-way skips everything already queued and carries on.
The deployment ``classification-backfill`` in ``deployments/prefect.yaml`` runs it on demand.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import Field

from flows.nightly import enqueue_from, log_enqueued
from flows.params import SubmitParams
from flows.rounds import submit_and_collect
from flows.runtime import tracked_run


class BackfillParams(SubmitParams):
    """A one-off backfill over a source of JSONL task files."""

    source: str = Field(
        ..., description="JSONL file, local folder of them, s3://bucket/prefix/ or a single s3:// object."
    )
    task_type: str | None = Field(None, description="Task type for lines that name none.")
    deadline_minutes: float = Field(24 * 60, gt=0, description="Stop waiting for batches after this long.")
    poll_seconds: float = Field(60.0, gt=0, description="Longest pause between polls (backoff starts lower).")


@flow(name="nightbatch-backfill")
def backfill(params: BackfillParams) -> dict[str, Any]:
    with tracked_run("backfill", params, params.base_url) as run:
        enqueued = enqueue_from(run.services, params.source, params.task_type)
        log_enqueued(enqueued)
        run.totals = {
            "enqueued": enqueued.inserted,
            "already_queued": enqueued.duplicates,
            **submit_and_collect(
                run.services,
                params,
                run.run_id,
                deadline_minutes=params.deadline_minutes,
                poll_seconds=params.poll_seconds,
                notes=[*run.notes]
                + [f"task file refused (nothing of it enqueued): {error}" for error in enqueued.errors],
            ),
        }
        return {"run_id": run.run_id, **run.totals}
