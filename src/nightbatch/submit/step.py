"""The submit step: reconcile, claim, route, build, pack (with TTL decisions), submit."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from nightbatch import custom_ids
from nightbatch.build.cache_ttl import CacheDecision, decide_ttl
from nightbatch.build.prefix import CacheTTL
from nightbatch.build.requests import BuiltRequest, RequestBuilder
from nightbatch.db.models import BatchStatus, Task, TaskStatus
from nightbatch.db.queue_state import why_nothing_claimed
from nightbatch.errors import ConfigError
from nightbatch.quality.routes import calibrated_routes
from nightbatch.queue.claim import claim, release
from nightbatch.services import Services
from nightbatch.submit.budget import Budget, request_bound_usd, spent_today_usd
from nightbatch.submit.pack import PackedBatch, pack
from nightbatch.submit.plan import BuildFailure, PrefixSizer, plan_requests
from nightbatch.submit.priming import prime_prefix
from nightbatch.submit.reconcile import reconcile_pending
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
    priming_pusd: int = 0
    shadow_requests: int = 0
    forecast_usd: Decimal = Decimal(0)
    budget_stopped: str | None = None
    stopped: str | None = None
    unconfigured_queued: dict[str, int] = field(default_factory=dict)
    nothing_sent: str | None = None  # why no task went out this round, when none did
    failure_reasons: dict[str, int] = field(default_factory=dict)  # "error_type: message" -> tasks it failed


def _fail_tasks(services: Services, failures: list[BuildFailure]) -> None:
    if not failures:
        return
    now = datetime.now(UTC)
    with Session(services.engine) as session:
        for failure in failures:
            session.execute(
                update(Task)
                .where(col(Task.id) == failure.task_id, col(Task.status) == TaskStatus.CLAIMED)
                .values(
                    status=TaskStatus.FAILED,
                    error_type=failure.error_type,
                    error_message=failure.message[:2000],
                    claimed_by=None,
                    claimed_at=None,
                    updated_at=now,
                )
            )
        session.commit()


def _unconfigured_queued(services: Services, configured: set[str]) -> dict[str, int]:
    """Queued tasks whose type no configuration here describes (they wait for a worker that knows them)."""
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.task_type), func.count())
            .where(col(Task.status) == TaskStatus.QUEUED, col(Task.task_type).not_in(sorted(configured)))
            .group_by(col(Task.task_type))
        ).all()
    return {str(t): int(n) for t, n in rows}


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
    return "; ".join(reasons) or "every claim was lost to another worker before its batch was written"


def submit_step(
    services: Services,
    *,
    limit: int = 100_000,
    task_types: list[str] | None = None,
    run_id: int | None = None,
    expected_minutes: float = 60.0,
    concurrency: int = 16,
    budget_usd: Decimal | None = None,
) -> SubmitReport:
    """Send up to ``limit`` queued tasks out as batches. Safe to run concurrently and to re-run.

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
    report.unconfigured_queued = _unconfigured_queued(services, configured)
    claimed = claim(
        services.engine,
        limit,
        services.worker,
        task_types=wanted,
        lease_seconds=settings.lease_seconds,
        poison_claims=settings.poison_claims,
    )
    report.claimed = len(claimed)
    if not claimed:
        report.nothing_sent = why_nothing_claimed(
            services.engine,
            wanted=wanted,
            configured=configured,
            worker=services.worker,
            lease_seconds=settings.lease_seconds,
        )
        return report
    plan = plan_requests(claimed, services.registry, RequestBuilder(), calibrated=calibrated_routes(services.engine))
    report.shadow_requests = plan.shadows
    report.trimmed_tokens = plan.trimmed_tokens
    sizer = PrefixSizer(services.client)
    decisions: dict[tuple[str, str], CacheDecision] = {}

    trimmed: dict[tuple[str, str], int] = {}

    def ttl_for(key: tuple[str, str], members: list[BuiltRequest]) -> CacheTTL | None:
        first = members[0]
        trimmed[key] = sum(m.trimmed_tokens for m in members)
        task_type = services.registry.get(first.task_type)
        decision = decide_ttl(
            model=first.model,
            prices=services.prices,
            prefix_tokens=sizer.tokens(first.prefix),
            requests=len(members),
            expected_minutes=expected_minutes,
            concurrency=concurrency,
            mode=task_type.cache.mode,
            allow_priming=task_type.cache.prime,
        )
        decisions[key] = decision
        return decision.ttl

    packed = pack(plan.requests, ttl_for)
    failures = list(plan.failures)
    failures += [
        BuildFailure(r.task_id, "request_too_large", f"request is {size} bytes, over the batch size limit")
        for r, size in packed.too_large
    ]
    _fail_tasks(services, failures)
    report.failed_tasks = len(failures)
    for failure in failures:
        report.failed_by_error[failure.error_type] = report.failed_by_error.get(failure.error_type, 0) + 1
        reason = f"{failure.error_type}: {failure.message}"
        report.failure_reasons[reason] = report.failure_reasons.get(reason, 0) + 1
    report.decisions = {f"{k[0]}/{k[1]}": d.as_record() for k, d in decisions.items()}
    primed: set[tuple[str, str]] = set()
    for index, batch in enumerate(packed.batches):
        key = (batch.model, batch.prefix_hash)
        if not _fit_budget(services, batch, decisions[key], budget):
            later = [r.task_id for b in packed.batches[index + 1 :] for r in b.requests]
            release(services.engine, later, services.worker)
            report.budget_stopped = budget.stopped
            if not batch.requests:
                break
        # What trimming removed (estimated) is kept with the cache decision, per group.
        decision = {**decisions[key].as_record(), "trimmed_tokens_estimated": trimmed.get(key, 0)}
        if decisions[key].prime and key not in primed:
            primed.add(key)
            report.priming_pusd += prime_prefix(services, batch.requests[0], run_id=run_id) or 0
        try:
            outcome = submit_batch(
                services.engine,
                services.client,
                services.store,
                batch,
                worker=services.worker,
                run_id=run_id,
                cache_decision=decision,
            )
        except Exception:
            # Nothing after a refused create goes out this run; those tasks go back to the queue.
            later = [r.task_id for b in packed.batches[index + 1 :] for r in b.requests]
            release(services.engine, later, services.worker)
            raise
        if outcome is None:
            continue
        report.batches.append(outcome)
        if outcome.provider_batch_id:
            report.submitted_tasks += sum(not custom_ids.is_shadow(r.custom_id) for r in batch.requests)
        if outcome.status == BatchStatus.PENDING:
            # One unconfirmed create at a time per worker: two of equal size could not be told apart later.
            later = [r.task_id for b in packed.batches[index + 1 :] for r in b.requests]
            release(services.engine, later, services.worker)
            report.stopped = f"batch {outcome.batch_id}: create outcome unknown ({outcome.error}); stopped this round"
            break
        if report.budget_stopped:
            break
    report.forecast_usd = budget.committed_usd
    if not report.submitted_tasks:
        report.nothing_sent = _why_nothing_sent(report)
    if report.budget_stopped:
        log.warning("budget: %s; the rest stays queued", report.budget_stopped)
    return report
