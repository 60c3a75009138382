"""The real-time fallback: tasks a batch will not finish by the deadline, sent one by one through the Messages API.

Each request is the one the batch carried, sent through the same Claude port (``ClaudeClient.create_message``)
with the SDK's retries, at most ``realtime_concurrency`` at a time. Its answer is checked like a batch result,
written to its own output object, and billed at **standard** prices in the ledger with purpose ``fallback``
and tier ``standard``, so a task's batch usage and its real-time usage stay apart.

Before anything is sent each request is priced at its upper bound (whole prompt uncached plus ``max_tokens``
of output, at standard prices) and admitted against the run's and the day's budget; what does not fit stays
queued, like a batch request would.

Known limit: with SDK retries on, a call whose first answer was lost after billing and that is then retried
is billed twice and booked once (the priming call runs without retries for this reason). The issue asks for
the SDK's retries here: a lost answer is rarer than a 429 or 529 at night.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from nightbatch import custom_ids
from nightbatch.build.requests import BuiltRequest, RequestBuilder
from nightbatch.catalog import canonical_model
from nightbatch.collect.outcome import check_output
from nightbatch.collect.rows import thinking_tokens
from nightbatch.db.calibrations import calibrated_routes
from nightbatch.db.deadlines import claim_for_fallback, fail_for_deadline, record_fallback, release_fallback
from nightbatch.db.ledger import AttemptRow, UsageRow, json_text
from nightbatch.db.models import ServiceTier, TaskStatus, UsagePurpose
from nightbatch.errors import ConfigError, ProviderError
from nightbatch.pricing import Usage, geo_multiplier, price_usage
from nightbatch.services import Services
from nightbatch.submit.budget import Budget
from nightbatch.submit.plan import PrefixSizer, plan_requests

__all__ = ["FallbackReport", "send_realtime", "standard_bound_usd"]

log = logging.getLogger(__name__)

_MTOK = Decimal(1_000_000)
_INLINE_LIMIT = 512


@dataclass
class FallbackReport:
    """What the real-time fallback did."""

    sent: list[int] = field(default_factory=list)  # task ids answered (succeeded or failed its checks)
    failed: list[str] = field(default_factory=list)  # "task N: why" for calls that failed
    requeued: list[int] = field(default_factory=list)  # retryable failures and budget stops: back in the queue
    cost_pusd: int = 0
    budget_stopped: str | None = None


def standard_bound_usd(services: Services, request: BuiltRequest, prefix_tokens: int) -> Decimal:
    """Upper bound of one real-time request: the whole prompt uncached and ``max_tokens`` out, standard prices.

    The long-prompt band and US inference (1.1x) are applied as the batch bound applies them.
    """
    prompt = prefix_tokens + request.tail_tokens
    price = services.prices.price(request.model).for_prompt(prompt)
    geo = geo_multiplier(request.prefix.settings.get("inference_geo"))
    return (prompt * price.input / _MTOK + request.max_tokens * price.output / _MTOK) * geo


def _inline(output: Any) -> Any:
    text = json.dumps(output, ensure_ascii=False)
    return output if len(text) <= _INLINE_LIMIT else None


def send_realtime(
    services: Services, task_ids: list[int], *, run_id: int | None, budget: Budget, now: datetime
) -> FallbackReport:
    """Claim ``task_ids`` (those still queued), send each real-time, record answers; see the module docstring."""
    report = FallbackReport()
    claimed = claim_for_fallback(services.engine, task_ids, services.worker, now)
    if not claimed:
        return report
    plan = plan_requests(claimed, services.registry, RequestBuilder(), calibrated=calibrated_routes(services.engine))
    for failure in plan.failures:
        fail_for_deadline(
            services.engine, [failure.task_id], failure.message, status=TaskStatus.CLAIMED, worker=services.worker
        )
        report.failed.append(f"task {failure.task_id}: {failure.message}")
    requests = [r for r in plan.requests if not custom_ids.is_shadow(r.custom_id)]
    by_id = {t.id: t for t in claimed}
    sizer = PrefixSizer(services.client)
    admitted: list[BuiltRequest] = []
    for request in requests:
        if report.budget_stopped is None and budget.admit(
            standard_bound_usd(services, request, sizer.tokens(request.prefix))
        ):
            admitted.append(request)
            continue
        report.budget_stopped = report.budget_stopped or budget.stopped
        release_fallback(
            services.engine,
            request.task_id,
            services.worker,
            error_type="budget",
            message=f"real-time fallback not sent: {budget.stopped}",
        )
        report.requeued.append(request.task_id)
    with ThreadPoolExecutor(max_workers=services.settings.realtime_concurrency) as pool:
        outcomes = list(pool.map(lambda r: _send_one(services, r, by_id, run_id, now), admitted))
    for request, (cost, problem, requeued) in zip(admitted, outcomes, strict=True):
        report.cost_pusd += cost
        if problem is None:
            report.sent.append(request.task_id)
        else:
            report.failed.append(f"task {request.task_id}: {problem}")
            if requeued:
                report.requeued.append(request.task_id)
    return report


def _send_one(
    services: Services, request: BuiltRequest, claimed: dict[int, Any], run_id: int | None, now: datetime
) -> tuple[int, str | None, bool]:
    """Send one request; returns (cost in picodollars, problem or None, whether the task went back to the queue)."""
    task = claimed[request.task_id]
    try:
        # Uncached: the batch's cache entries are not shared with real-time calls (ANTHROPIC_API.md, late 2026).
        message = services.client.create_message(request.params(None))
    except ProviderError as exc:
        if exc.error_type == "invalid_request_error":
            fail_for_deadline(
                services.engine, [task.id], str(exc), status=TaskStatus.CLAIMED, worker=services.worker, sent=True
            )
            return 0, str(exc), False
        release_fallback(
            services.engine, task.id, services.worker, error_type="fallback_error", message=str(exc), sent=True
        )
        return 0, str(exc), True
    raw = message.get("usage") or {}
    usage = Usage.from_api(raw)
    model = canonical_model(str(message.get("model") or request.model))
    reported_geo = raw.get("inference_geo")
    geo = reported_geo if isinstance(reported_geo, str) else request.prefix.settings.get("inference_geo")
    cost = _price(services, model, usage, geo, now)
    task_type = services.registry.get(task.task_type) if task.task_type in services.registry else None
    output, check = check_output(message, task_type, task.payload)
    key = f"outputs/task_type={task.task_type}/date={now:%Y-%m-%d}/realtime-task-{task.id}-a{task.attempts + 1}.jsonl"
    record = {
        "task_id": task.id,
        "custom_id": request.custom_id,
        "task_type": task.task_type,
        "model": model,
        "batch_id": None,
        "service_tier": "standard",
        "passed": check.passed,
        "output": output,
        "stop_reason": message.get("stop_reason"),
        "usage": message.get("usage"),
    }
    uri = services.store.put_bytes(key, (json.dumps(record) + "\n").encode(), content_type="application/jsonl")
    record_fallback(
        services.engine,
        task,
        worker=services.worker,
        usage=UsageRow(
            task_id=task.id, batch_id=None, run_id=run_id, model=model, service_tier=ServiceTier.STANDARD,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_write_5m_tokens=usage.cache_write_5m_tokens, cache_write_1h_tokens=usage.cache_write_1h_tokens,
            cache_read_tokens=usage.cache_read_tokens, price_version=services.prices.version, cost_pusd=cost,
            purpose=UsagePurpose.FALLBACK, thinking_tokens=thinking_tokens(message, raw, usage.output_tokens),
            inference_geo=geo, billed_at=now, response_id=message.get("id"),
        ),
        attempt=AttemptRow(
            task_id=task.id, task_type=task.task_type,
            attempt=task.attempts + 1,  # this send (attempts counts the sends before it)
            model=model, purpose=UsagePurpose.FALLBACK, batch_id=None, custom_id=None, calibration_id=None,
            result_type="succeeded", check_passed=check.passed, check_reason=check.reason,
            output=json_text(_inline(output)),
        ),
        status=TaskStatus.SUCCEEDED if check.passed else TaskStatus.FAILED,
        output_uri=uri,
        inline=_inline(output),
        now=now,
    )  # fmt: skip
    return cost or 0, None, False


def _price(services: Services, model: str, usage: Usage, geo: str | None, now: datetime) -> int | None:
    """The standard-tier cost, or None (booked unpriced, never $0) when the table has no row for the day."""
    if not services.prices.knows(model):
        return None
    try:
        return price_usage(services.prices, model, usage, "standard", now.date(), inference_geo=geo).total_pusd
    except ConfigError:
        return None
