"""The deadline step: cancel what will be late, then settle its tasks by each task type's ``on_deadline``.

A task's deadline is its own ``deadline`` column, or else the run's deadline when a batch of that run holds
or gave back the task. At ``deadline_margin_minutes`` before a deadline:

1. **Cancel.** Every task batch still ``in_progress`` that holds a task due by then is canceled. What it
   finished is ingested and billed as usual by the collect step; its unprocessed requests come back
   ``canceled`` (or ``expired``) and the outcome policy puts their tasks back in the queue.
2. **Settle.** Queued tasks that are due are handled per their type's ``on_deadline``:

   ============  ===============================================================================
   ``realtime``  sent now as real-time requests (:mod:`nightbatch.deadline.realtime`), billed at
                 standard prices with purpose ``fallback``
   ``next_run``  left queued, with ``error_type = deadline`` saying why (the run stops submitting)
   ``fail``      ``failed``, ``error_type = deadline`` and the deadline in the message
   ============  ===============================================================================

Under ``realtime`` a task with its own deadline goes real-time from the start when that deadline is sooner
than the p95 duration measured for batches like the one it would join (:mod:`nightbatch.deadline.durations`):
waiting for the batch would most likely miss it. With no measured batches nothing goes early.

Every function takes ``now``: the step is driven by the caller's clock (the flow's wall clock, a test's).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from nightbatch.db.deadlines import (
    OpenBatch,
    QueuedTask,
    fail_for_deadline,
    mark_canceled_for_deadline,
    note_left_queued,
    open_task_batches,
    queued_with_deadlines,
    run_spent_pusd,
)
from nightbatch.deadline.durations import DurationModel
from nightbatch.deadline.realtime import send_realtime
from nightbatch.errors import ProviderError
from nightbatch.pricing import pusd_to_usd
from nightbatch.services import Services
from nightbatch.submit.budget import Budget, spent_today_usd
from nightbatch.tasktypes import OnDeadline

__all__ = ["DeadlineReport", "deadline_step"]

log = logging.getLogger(__name__)


@dataclass
class DeadlineReport:
    """What one deadline step did."""

    canceled_batches: list[int] = field(default_factory=list)
    realtime: list[int] = field(default_factory=list)
    realtime_early: list[int] = field(default_factory=list)  # sent real-time before any batch (deadline < p95)
    left_queued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fallback_pusd: int = 0
    budget_stopped: str | None = None
    run_margin_passed: bool = False  # the run's deadline is within the margin: submit nothing more

    def notes(self) -> list[str]:
        """Lines for the run's notes, naming every task concerned."""
        lines = []
        if self.canceled_batches:
            lines.append(f"deadline: canceled batches {_ids(self.canceled_batches)} (finished results kept)")
        if self.realtime or self.realtime_early:
            lines.append(f"deadline: sent real-time (fallback) tasks {_ids(self.realtime + self.realtime_early)}")
        if self.left_queued:
            lines.append(f"deadline: left queued for the next run tasks {_ids(self.left_queued)}")
        if self.failed:
            lines.append(f"deadline: failed tasks {_ids(self.failed)}")
        if self.budget_stopped:
            lines.append(f"deadline: real-time fallback stopped by the budget: {self.budget_stopped}")
        return lines + [f"deadline: {e}" for e in self.errors]


def _ids(ids: list[int]) -> str:
    return ", ".join(str(i) for i in sorted(ids))


def _due(deadline: datetime | None, now: datetime, margin: timedelta) -> bool:
    return deadline is not None and deadline - margin <= now


def deadline_step(
    services: Services,
    *,
    now: datetime,
    run_id: int | None = None,
    run_deadline: datetime | None = None,
    task_types: list[str] | None = None,
    margin: timedelta | None = None,
    budget_usd: Decimal | None = None,
    durations: DurationModel | None = None,
) -> DeadlineReport:
    """Cancel open batches that would be late and settle due queued tasks (module docstring). Safe to repeat."""
    margin = margin if margin is not None else timedelta(minutes=services.settings.deadline_margin_minutes)
    report = DeadlineReport(run_margin_passed=_due(run_deadline, now, margin))
    for batch in open_task_batches(services.engine):
        if _batch_due(batch, now, margin, run_id, run_deadline):
            _cancel(services, batch, now, report)
    configured = set(services.registry.names())
    types = [t for t in (task_types or sorted(configured)) if t in configured]
    # Only what can be due now is read: own deadlines within the margin (or, for real-time types, within the
    # longest p95 measured), and the run's tasks once its own deadline is within the margin.
    horizon = now + margin
    if any(services.registry.get(t).on_deadline == "realtime" for t in types):
        durations = durations or DurationModel.load(services.engine)
        longest = durations.longest_p95()
        if longest is not None:
            horizon = max(horizon, now + timedelta(seconds=longest))
    in_run = run_id if report.run_margin_passed else None
    queued = queued_with_deadlines(services.engine, in_run, types, deadline_before=horizon)
    if not queued:
        return report
    durations = durations or DurationModel.load(services.engine)
    groups: dict[OnDeadline, list[int]] = {"realtime": [], "next_run": [], "fail": []}
    early: list[int] = []
    for task in queued:
        policy = services.registry.get(task.task_type).on_deadline
        deadline = task.deadline if task.deadline is not None else (run_deadline if task.retried_in_run else None)
        if _due(deadline, now, margin):
            groups[policy].append(task.id)
        elif policy == "realtime" and task.deadline is not None and _sooner_than_p95(services, durations, task, now):
            early.append(task.id)
    if groups["fail"]:
        reason = "deadline passed before its batch finished (on_deadline = fail)"
        report.failed = fail_for_deadline(services.engine, groups["fail"], reason)
    if groups["next_run"]:
        note_left_queued(services.engine, groups["next_run"], "deadline passed: left queued for the next run")
        report.left_queued = groups["next_run"]
    if groups["realtime"] or early:
        budget = _budget(services, budget_usd, run_id, now)
        sent = send_realtime(services, groups["realtime"] + early, run_id=run_id, budget=budget, now=now)
        early_ids = set(early)
        report.realtime = [t for t in sent.sent if t not in early_ids]
        report.realtime_early = [t for t in sent.sent if t in early_ids]
        report.fallback_pusd = sent.cost_pusd
        report.budget_stopped = sent.budget_stopped
        report.errors += sent.failed
    return report


def _batch_due(
    batch: OpenBatch, now: datetime, margin: timedelta, run_id: int | None, run_deadline: datetime | None
) -> bool:
    if _due(batch.earliest_task_deadline, now, margin):
        return True
    return run_id is not None and batch.run_id == run_id and _due(run_deadline, now, margin)


def _cancel(services: Services, batch: OpenBatch, now: datetime, report: DeadlineReport) -> None:
    note = f"deadline: canceled at {now:%Y-%m-%d %H:%M:%S} UTC, its tasks due within the margin"
    try:
        info = services.client.cancel_batch(batch.provider_batch_id)
    except ProviderError as exc:
        if exc.status_code == 400:
            # It ended between our last poll and the cancel (the API refuses to cancel an ended batch):
            # nothing to do, the collect step ingests it whole.
            log.info("batch %s ended before its deadline cancel: %s", batch.id, exc)
            return
        report.errors.append(f"canceling batch {batch.id} ({batch.provider_batch_id}) failed, will retry: {exc}")
        return
    mark_canceled_for_deadline(services.engine, batch.id, info.processing_status, note)
    report.canceled_batches.append(batch.id)


def _sooner_than_p95(services: Services, durations: DurationModel, task: QueuedTask, now: datetime) -> bool:
    assert task.deadline is not None
    model = task.model or services.registry.get(task.task_type).model
    spread = durations.spread(model, 1, now)
    return spread is not None and task.deadline - now < timedelta(seconds=spread.p95)


def _budget(services: Services, budget_usd: Decimal | None, run_id: int | None, now: datetime) -> Budget:
    """The run's and the day's caps, with what the ledger already holds counted against them.

    The run's own spend so far is its committed amount; the day's spend excludes it, so the daily check
    (day + run) counts it once.
    """
    settings = services.settings
    budget = Budget(
        per_run_usd=budget_usd if budget_usd is not None else settings.budget_per_run_usd,
        per_day_usd=settings.budget_per_day_usd,
    )
    if not budget.active:
        return budget
    run_spent = pusd_to_usd(run_spent_pusd(services.engine, run_id)) if run_id is not None else Decimal(0)
    budget.committed_usd = run_spent
    if budget.per_day_usd is not None:
        budget.spent_today_usd = spent_today_usd(services.engine, now) - run_spent
    return budget
