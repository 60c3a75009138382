"""Submitting a large ``limit`` in bounded chunks, so a worker's memory does not grow with the backfill.

:func:`~nightbatch.submit.step.submit_step` holds every task it claimed, and its built request, until its
batches are sent: a run asking for a million tasks in one step would hold them all (a claim of 100,000
tasks peaked at 1.8 KB a task resident; their requests hold 0.7 KB a task). :func:`submit_in_chunks` takes
the same ``limit`` one chunk at a time (default: one full batch,
:data:`~nightbatch.submit.pack.MAX_BATCH_REQUESTS`), each chunk claimed, built, packed and sent before the
next is claimed, so a worker's peak is one chunk's, whatever the limit.

It stops early, as one step would, when a chunk hits the budget, leaves a create unconfirmed, sends
nothing, or leaves tasks waiting for their group's cache pilot: claiming further chunks then would only
claim and release the same waiting tasks again. The caller's next round (after a collect) carries on.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from nightbatch.services import Services
from nightbatch.submit.pack import MAX_BATCH_REQUESTS
from nightbatch.submit.step import SubmitReport, submit_step

__all__ = ["DEFAULT_CHUNK", "merge_reports", "submit_in_chunks"]

DEFAULT_CHUNK = MAX_BATCH_REQUESTS


def merge_reports(total: SubmitReport, part: SubmitReport) -> None:
    """Add ``part`` (one chunk's report) into ``total``."""
    total.claimed += part.claimed
    total.submitted_tasks += part.submitted_tasks
    total.failed_tasks += part.failed_tasks
    for error_type, n in part.failed_by_error.items():
        total.failed_by_error[error_type] = total.failed_by_error.get(error_type, 0) + n
    for reason, n in part.failure_reasons.items():
        total.failure_reasons[reason] = total.failure_reasons.get(reason, 0) + n
    total.batches += part.batches
    total.reconciled += part.reconciled
    total.decisions.update(part.decisions)
    total.trimmed_tokens += part.trimmed_tokens
    total.pilots += part.pilots
    total.waiting_tasks += part.waiting_tasks
    total.shadow_requests += part.shadow_requests
    total.forecast_usd += part.forecast_usd
    total.budget_stopped = total.budget_stopped or part.budget_stopped
    total.stopped = total.stopped or part.stopped
    total.unconfigured_queued = part.unconfigured_queued  # a count of the queue now: the latest is right
    total.nothing_sent = None if total.submitted_tasks else part.nothing_sent


def submit_in_chunks(
    services: Services,
    *,
    limit: int = 100_000,
    chunk: int = DEFAULT_CHUNK,
    budget_usd: Decimal | None = None,
    task_types: list[str] | None = None,
    run_id: int | None = None,
    expected_minutes: float = 60.0,
    deadline: datetime | None = None,
) -> SubmitReport:
    """:func:`submit_step` for up to ``limit`` tasks, at most ``chunk`` of them claimed at a time.

    ``budget_usd`` spans the chunks (each gets what the earlier ones left); the default is the
    per-run budget of the settings, as for one step. The report adds up the chunks'.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    budget = budget_usd if budget_usd is not None else services.settings.budget_per_run_usd
    total = SubmitReport()
    left = limit
    while left > 0:
        want = min(chunk, left)
        remaining = None if budget is None else max(Decimal(0), budget - total.forecast_usd)
        part = submit_step(services, limit=want, task_types=task_types, run_id=run_id,
                           expected_minutes=expected_minutes, budget_usd=remaining, deadline=deadline)  # fmt: skip
        merge_reports(total, part)
        left -= part.claimed
        if part.claimed < want or not part.submitted_tasks or part.waiting_tasks:
            break  # the queue is drained, or what is left waits (for a pilot, a worker that knows its type)
        if part.budget_stopped or part.stopped:
            break
    return total
