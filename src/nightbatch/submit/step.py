"""The submit step: reconcile, claim, route, build, plan each prefix group (pilot, fan-out, uncached), pack, submit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from nightbatch import custom_ids
from nightbatch.build.cache_ttl import CacheDecision
from nightbatch.build.prefix import CacheTTL
from nightbatch.build.requests import BuiltRequest, RequestBuilder
from nightbatch.db.calibrations import calibrated_routes
from nightbatch.db.models import BatchStatus
from nightbatch.db.queue_state import why_nothing_claimed
from nightbatch.db.task_claims import fail_claimed, queued_outside
from nightbatch.errors import ConfigError
from nightbatch.pipeline.downstream import enqueue_fallback_stages
from nightbatch.pipeline.graph import StageGraph
from nightbatch.queue.claim import ClaimedTask, claim, release
from nightbatch.services import Services
from nightbatch.submit.bounded import ClaimedPieces
from nightbatch.submit.budget import Budget, request_bound_usd, spent_today_usd
from nightbatch.submit.dedup import split_twins
from nightbatch.submit.groups import Send, plan_sends
from nightbatch.submit.pack import PackedBatch, pack
from nightbatch.submit.plan import BuildFailure, PrefixSizer, plan_requests
from nightbatch.submit.reconcile import reconcile_pending
from nightbatch.submit.reuse import serve_from_earlier_answers
from nightbatch.submit.submitter import SubmitOutcome, submit_batch

__all__ = ["SubmitReport", "submit_step"]

log = logging.getLogger(__name__)


@dataclass
class SubmitReport:
    claimed: int = 0
    submitted_tasks: int = 0
    failed_tasks: int = 0
    failed_by_error: dict[str, int] = field(default_factory=dict)
    """Tasks that failed before sending (bad template field, too large), by error type."""
    batches: list[SubmitOutcome] = field(default_factory=list)
    reconciled: list[str] = field(default_factory=list)
    decisions: dict[str, dict[str, object]] = field(default_factory=dict)
    trimmed_tokens: int = 0
    pilots: int = 0
    waiting_tasks: int = 0
    shadow_requests: int = 0
    forecast_usd: Decimal = Decimal(0)
    budget_stopped: str | None = None
    stopped: str | None = None
    unconfigured_queued: dict[str, int] = field(default_factory=dict)
    nothing_sent: str | None = None  # why no task went out this round, when none did
    failure_reasons: dict[str, int] = field(default_factory=dict)  # "error_type: message" -> tasks it failed
    deduplicated: int = 0  # twins linked to an identical request of this submit (nightbatch.submit.dedup)
    reused: int = 0  # tasks served from an earlier identical answer (nightbatch.submit.reuse)


def _fit_budget(services: Services, batch: PackedBatch, decision: CacheDecision, budget: Budget) -> bool:
    """Keep the requests of ``batch`` that fit the budget (in order); release the rest. False if any was cut."""
    for position, request in enumerate(batch.requests):
        if not budget.admit(request_bound_usd(services.prices, request, decision)):
            cut = batch.requests[position:]
            batch.requests = batch.requests[:position]
            batch.recount()
            release(services.engine, [r.task_id for r in cut if not custom_ids.is_shadow(r.custom_id)], services.worker)
            return False
    return True


def _why_nothing_sent(report: SubmitReport) -> str:
    reasons = [f"{report.failed_tasks} task(s) failed before sending"] if report.failed_tasks else []
    reasons += [r for r in (report.budget_stopped and f"budget: {report.budget_stopped}", report.stopped) if r]
    if report.waiting_tasks:
        reasons.append(f"{report.waiting_tasks} task(s) wait for their group's cache pilot")
    return "; ".join(reasons) or "every claim was lost to another worker before its batch was written"


def _release_quietly(services: Services, task_ids: list[int]) -> None:
    try:
        release(services.engine, task_ids, services.worker)
    except Exception:  # the original error is the one to see; the claims then lapse with their lease
        log.exception("could not give back %d claimed task(s) after a failed submit", len(task_ids))


def _fixed_ttl(ttl: CacheTTL | None) -> Callable[[tuple[str, str], list[BuiltRequest]], CacheTTL | None]:
    return lambda _key, _members: ttl


def submit_step(
    services: Services,
    *,
    limit: int = 100_000,
    task_types: list[str] | None = None,
    run_id: int | None = None,
    expected_minutes: float = 60.0,
    budget_usd: Decimal | None = None,
    deadline: datetime | None = None,
    fanout_lag_minutes: float | None = None,
    now: datetime | None = None,
) -> SubmitReport:
    """Send up to ``limit`` queued tasks out as batches. Safe to run concurrently and to re-run.

    Each prefix group is sent as :mod:`nightbatch.submit.groups` decides: uncached, as a one-task pilot
    (the rest of the group waits, queued, for the pilot's results), or as a fan-out that reads.
    ``deadline``: when the run must be done (no pilot is sent that cannot finish, with its fan-out, before
    it). ``expected_minutes``: how long a batch is expected to take. ``now``: the planner's clock (tests).

    ``budget_usd`` caps this run (default: ``budget_per_run_usd``); ``budget_per_day_usd`` caps the day.
    What would exceed a cap stays queued (see :mod:`nightbatch.submit.budget`).
    """
    report = SubmitReport()
    settings = services.settings
    budget = Budget(
        per_run_usd=budget_usd if budget_usd is not None else settings.budget_per_run_usd,
        per_day_usd=settings.budget_per_day_usd,
    )
    if budget.per_day_usd is not None:
        budget.spent_today_usd = spent_today_usd(services.engine)
    for recovered in reconcile_pending(
        services.engine, services.client, worker=services.worker, lease_seconds=settings.lease_seconds
    ):
        report.reconciled.append(recovered.describe())
    # Only configured types are claimed: a task of a type this deployment does not know stays queued
    # (and is counted below), rather than being claimed by a worker that cannot build it.
    configured = set(services.registry.names())
    wanted = [t for t in (task_types or sorted(configured)) if t in configured]
    unknown = set(task_types or []) - configured
    if unknown:
        raise ConfigError(f"task type(s) {', '.join(sorted(unknown))} not configured (configured: "
                          f"{', '.join(sorted(configured)) or 'none'})")  # fmt: skip
    report.unconfigured_queued = queued_outside(services.engine, configured)  # they wait for a worker that knows them
    # Stage tasks of results the real-time deadline fallback answered (ingest makes everyone else's).
    enqueue_fallback_stages(services.engine, StageGraph.of(services.registry), services.store, datetime.now(UTC))
    # Claimed a piece at a time, as building consumes them: claimed rows never pile up (issue 20).
    claimed = ClaimedPieces(
        lambda n: claim(
            services.engine,
            n,
            services.worker,
            task_types=wanted,
            lease_seconds=settings.lease_seconds,
            poison_claims=settings.poison_claims,
        ),
        limit,
    )
    if not claimed.ids:
        report.nothing_sent = why_nothing_claimed(
            services.engine,
            wanted=wanted,
            configured=configured,
            worker=services.worker,
            lease_seconds=settings.lease_seconds,
        )
        return report
    try:
        calibrated = calibrated_routes(services.engine)
        # Payloads are kept only for types that reuse answers (opt-in): a served task's stages are built from
        # them, while every other claimed row is let go of as soon as its request is built.
        reusing = {t.name for t in services.registry if t.reuse_window_seconds}
        payloads: dict[int, dict[str, Any]] = {}

        def keeping_reused_payloads(tasks: Iterable[ClaimedTask]) -> Iterator[ClaimedTask]:
            for task in tasks:
                if task.task_type in reusing:
                    payloads[task.id] = task.payload
                yield task

        plan = plan_requests(
            keeping_reused_payloads(claimed), services.registry, RequestBuilder(), calibrated=calibrated
        )
        report.claimed = len(claimed.ids)
        report.shadow_requests = plan.shadows
        report.trimmed_tokens = plan.trimmed_tokens
        # Nothing identical is paid for twice: earlier answers within a type's reuse window, then one request
        # per identical set of this submit (its twins follow their leader's batch).
        clock = now or datetime.now(UTC)
        plan.requests, report.reused = serve_from_earlier_answers(services, plan.requests, payloads, clock)
        plan.requests, twins = split_twins(plan.requests, services.registry)
        groups = plan_sends(
            services,
            plan.requests,
            PrefixSizer(services.client),
            now=now or datetime.now(UTC),
            deadline=deadline,
            fanout_minutes=expected_minutes,
            fanout_lag_minutes=fanout_lag_minutes,
        )
        # Tasks of a group whose pilot is out wait in the queue; a release never counts as an attempt.
        report.waiting_tasks = len(release(services.engine, groups.waiting, services.worker))
        report.pilots = groups.pilots
        batches: list[tuple[PackedBatch, Send]] = []
        failures = list(plan.failures)
        for send in groups.sends:
            packed = pack(send.requests, _fixed_ttl(send.ttl))
            batches += [(b, send) for b in packed.batches]
            failures += [
                BuildFailure(r.task_id, "request_too_large", f"request is {size} bytes, over the batch size limit")
                for r, size in packed.too_large
            ]
        fail_claimed(services.engine, failures, services.worker, now=datetime.now(UTC))
    except BaseException:
        # Planning failed before anything was linked to a batch (a database blip, a price table missing a
        # model): the claims go back at once. Left to lapse, they would count as a dead worker's (poison rule).
        _release_quietly(services, claimed.ids)
        raise
    report.failed_tasks = len(failures)
    for failure in failures:
        report.failed_by_error[failure.error_type] = report.failed_by_error.get(failure.error_type, 0) + 1
        reason = f"{failure.error_type}: {failure.message}"
        report.failure_reasons[reason] = report.failure_reasons.get(reason, 0) + 1
    report.decisions = {f"{k[0]}/{k[1]}": d.as_record() for k, d in groups.decisions.items()}
    trimmed: dict[tuple[str, str], int] = {}
    for request in plan.requests:
        key = (request.model, request.prefix.hash)
        trimmed[key] = trimmed.get(key, 0) + request.trimmed_tokens

    def release_after(index: int) -> None:
        later = [r.task_id for b, _ in batches[index + 1 :] for r in b.requests]
        release(services.engine, later, services.worker)
        twins.release_rest(services, keep=[r.task_id for r in batches[index][0].requests])

    for index, (batch, send) in enumerate(batches):
        if not _fit_budget(services, batch, send.decision, budget):
            release_after(index)
            report.budget_stopped = budget.stopped
            if not batch.requests:
                break
        # What trimming removed (estimated) is kept with the cache decision, per group.
        decision = {**send.decision.as_record(), "ttl": send.ttl, "role": send.role,
                    "trimmed_tokens_estimated": trimmed.get(send.key, 0)}  # fmt: skip
        try:
            outcome = submit_batch(
                services.engine,
                services.client,
                services.store,
                batch,
                worker=services.worker,
                run_id=run_id,
                cache_decision=decision,
                cache_role=send.role,
            )
        except Exception:
            # Nothing after a refused create goes out this run; those tasks go back to the queue.
            release_after(index)
            twins.release_rest(services)
            raise
        if outcome is None:
            # No task left to send: claims lost to another worker, or (a pilot) another worker's pilot for the
            # group got there first. Whatever this worker still holds goes back to the queue.
            report.waiting_tasks += len(release(services.engine, [r.task_id for r in batch.requests], services.worker))
            continue
        report.batches.append(outcome)
        if outcome.provider_batch_id:
            report.submitted_tasks += sum(not custom_ids.is_shadow(r.custom_id) for r in batch.requests)
            twins.after_batch(services, outcome.batch_id, batch.requests)
        if outcome.status == BatchStatus.PENDING:
            # One unconfirmed create at a time per worker: two of equal size could not be told apart later.
            release_after(index)
            report.stopped = f"batch {outcome.batch_id}: create outcome unknown ({outcome.error}); stopped this round"
            break
        if report.budget_stopped:
            break
    twins.release_rest(services)  # twins whose leader did not go out this round wait in the queue with it
    report.deduplicated = twins.linked
    if not report.submitted_tasks and not report.reused:
        report.nothing_sent = _why_nothing_sent(report)
    report.forecast_usd = budget.committed_usd
    if report.budget_stopped:
        log.warning("budget: %s; the rest stays queued", report.budget_stopped)
    return report
