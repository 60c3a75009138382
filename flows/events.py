"""Prefect events for automations (see docs/operations.md for the names, resources and an example).

Every event's primary resource is ``nightbatch.run.<namespace>.<run id>`` (a run), or
``nightbatch.task-type.<name>`` (something about one task type), with the label ``nightbatch.deployment``
set to the deployment's name (``adhoc`` outside a deployment). Prefect itself adds the flow run, flow and
deployment as related resources, so an automation can match either our labels or Prefect's.
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event
from prefect.runtime import deployment

from nightbatch.collect.ingest import IngestReport
from nightbatch.pricing import pusd_to_usd
from nightbatch.report.cache import TypeCache
from nightbatch.run_facts import JudgedRun

RUN_FINISHED = "nightbatch.run.finished"
RUN_SUBMITTED = "nightbatch.run.submitted"
BATCH_ENDED = "nightbatch.batch.ended"
BUDGET_STOPPED = "nightbatch.budget.stopped"
DEADLINE_PASSED = "nightbatch.deadline.passed"
CACHE_BELOW_PLAN = "nightbatch.cache.below-plan"
MODEL_UNPRICED = "nightbatch.model.unpriced"


def deployment_name() -> str:
    """The running deployment's name, or ``adhoc`` (a CLI run, a test)."""
    name = deployment.name
    return str(name) if name else "adhoc"


def _slug() -> str:
    return "".join(c if c.isalnum() else "-" for c in deployment_name().lower()).strip("-") or "adhoc"


def namespace() -> str:
    """A key prefix unique per deployment (lowercase letters, digits and dashes, as artifact keys need)."""
    return f"nightbatch-{_slug()}"


def _labels(**extra: str) -> dict[str, str]:
    return {"nightbatch.deployment": deployment_name(), **extra}


def _run_resource(run_id: int, **extra: str) -> dict[str, str]:
    return {"prefect.resource.id": f"nightbatch.run.{_slug()}.{run_id}", "prefect.resource.name": f"run {run_id}",
            **_labels(**extra)}  # fmt: skip


def _type_resource(task_type: str, **extra: str) -> dict[str, str]:
    return {"prefect.resource.id": f"nightbatch.task-type.{task_type}", "prefect.resource.name": task_type,
            **_labels(**extra)}  # fmt: skip


def run_finished(judged: JudgedRun, kind: str, *, final: bool = True) -> None:
    """Outcome (``ok`` / ``problems``) as a label, so an automation can match a failed night.

    ``final=False``: a night that handed its batches to ``collect`` emits ``nightbatch.run.submitted``
    now and ``nightbatch.run.finished`` when collect judges it, so a finished night is announced once.
    """
    payload: dict[str, Any] = {
        "kind": kind,
        "outcome": judged.outcome.label,
        "reasons": list(judged.outcome.reasons),
        "message": judged.outcome.message,
        "outcomes": judged.facts.outcomes,
        "failed_before_sending": judged.facts.failed_before_sending,
        "cost_usd": str(judged.summary.cost_usd),
        "baseline_usd": str(judged.summary.baseline_usd),
    }
    resource = _run_resource(judged.run_id, **{"nightbatch.outcome": judged.outcome.label})
    emit_event(RUN_FINISHED if final else RUN_SUBMITTED, resource, payload=payload)


def batch_ended(report: IngestReport, task_type: str, model: str) -> None:
    related = [{"prefect.resource.id": f"nightbatch.batch.{report.provider_batch_id or report.batch_id}",
                "prefect.resource.role": "batch"}]  # fmt: skip
    emit_event(BATCH_ENDED, _type_resource(task_type, **{"nightbatch.model": model}), related=related,
               payload={"batch_id": report.batch_id, "provider_batch_id": report.provider_batch_id,
                        "outcomes": report.outcomes, "cost_usd": str(pusd_to_usd(report.cost_pusd))})  # fmt: skip


def budget_stopped(run_id: int, reason: str) -> None:
    emit_event(BUDGET_STOPPED, _run_resource(run_id), payload={"reason": reason})


def deadline_passed(run_id: int, open_batches: int) -> None:
    emit_event(DEADLINE_PASSED, _run_resource(run_id), payload={"open_batches": open_batches})


def cache_below_plan(run_id: int, cache: TypeCache) -> None:
    emit_event(CACHE_BELOW_PLAN, _type_resource(cache.task_type), payload={
        "run_id": run_id, "hit_rate": cache.hit_rate, "rolling_hit_rate": cache.rolling_hit_rate,
        "drop_points": cache.drop_points})  # fmt: skip


def model_unpriced(run_id: int, model: str, detail: str) -> None:
    emit_event(MODEL_UNPRICED, {"prefect.resource.id": f"nightbatch.model.{model}", "prefect.resource.name": model,
                                **_labels()}, payload={"run_id": run_id, "detail": detail})  # fmt: skip
