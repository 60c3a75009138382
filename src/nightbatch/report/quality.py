"""Quality and routing in the report: what escalation cost, the calibrations behind routes, shadow drift.

- **Escalation**, per task type: tasks that climbed at least one rung, what the failed rungs cost, the
  actual cost of all rungs, and the same tasks sent straight to the top rung (each task's final usage
  re-priced on the top model at batch prices) — so the cascade's saving, or its cost, is explicit.
- **Calibrations**: the latest decided calibration of each type, its recommendation and whether it was
  applied (that is the route submitting uses), with the date.
- **Shadow drift**: agreement of the routed model with the next rung up on shadowed tasks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from nightbatch.catalog import canonical_model, load_catalog
from nightbatch.db import Engine
from nightbatch.db.calibrations import decided_calibrations
from nightbatch.db.queries.quality import EscalationAttempt, escalation_attempts, shadow_attempts
from nightbatch.pricing import PriceTable, price_usage, pusd_to_usd
from nightbatch.quality.measure import ShadowDrift, shadow_drift
from nightbatch.report.query import Selection
from nightbatch.report.savings import baseline_model_for
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["CalibrationLine", "EscalationLine", "QualityReport", "measured_drift", "quality_report"]


@dataclass
class EscalationLine:
    task_type: str
    top_model: str
    tasks: int = 0
    escalated: int = 0
    failed_rungs_pusd: int = 0
    actual_pusd: int = 0
    all_top_pusd: int = 0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = asdict(self)
        for name in ("failed_rungs_pusd", "actual_pusd", "all_top_pusd"):
            data[name.replace("_pusd", "_usd")] = str(pusd_to_usd(data.pop(name)))
        return data


@dataclass(frozen=True)
class CalibrationLine:
    task_type: str
    calibration_id: int
    recommended_model: str | None
    threshold: float | None
    decided_at: datetime | None
    applied_at: datetime | None
    evidence: dict[str, Any] | None


@dataclass
class QualityReport:
    escalation: list[EscalationLine] = field(default_factory=list)
    calibrations: list[CalibrationLine] = field(default_factory=list)
    drift: list[ShadowDrift] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "escalation": [line.as_dict() for line in self.escalation],
            "calibrations": [
                {
                    **asdict(c),
                    "decided_at": c.decided_at and c.decided_at.isoformat(),
                    "applied_at": c.applied_at and c.applied_at.isoformat(),
                }
                for c in self.calibrations
            ],
            "shadow_drift": [{**asdict(d), "drifted": d.drifted} for d in self.drift],
        }


def _top_model(task_type: str, registry: TaskTypeRegistry | None, fallback: str) -> str:
    if registry is not None and task_type in registry:
        ladder = registry.get(task_type).escalation
        if ladder:
            catalog = load_catalog()
            return max(ladder, key=lambda m: catalog[canonical_model(m)].tier if canonical_model(m) in catalog else 0)
    return fallback


def quality_report(
    engine: Engine,
    prices: PriceTable,
    selection: Selection,
    *,
    registry: TaskTypeRegistry | None = None,
    baseline_model: str | None = None,
) -> QualityReport:
    """The quality section of a report over ``selection``.

    A type's "all on the top rung" figure uses the top of its ladder, else ``baseline_model``, else the top
    of the config's ladders.
    """
    baseline_model = baseline_model or baseline_model_for(registry)
    report = QualityReport()
    per_task: dict[int, list[EscalationAttempt]] = {}
    for attempt in escalation_attempts(engine, selection):
        per_task.setdefault(attempt.task_id, []).append(attempt)
    lines: dict[str, EscalationLine] = {}
    for rows in per_task.values():
        task_type = rows[0].task_type
        line = lines.setdefault(task_type, EscalationLine(task_type, _top_model(task_type, registry, baseline_model)))
        line.tasks += 1
        line.escalated += len(rows) > 1
        line.actual_pusd += sum(int(r.cost_pusd or 0) for r in rows)  # unpriced: named by the report
        line.failed_rungs_pusd += sum(int(r.cost_pusd or 0) for r in rows[:-1])
        line.all_top_pusd += price_usage(prices, line.top_model, rows[-1].usage, "batch").total_pusd
    report.escalation = sorted(lines.values(), key=lambda line: line.task_type)
    latest = {c.task_type: c for c in decided_calibrations(engine)}  # the newest decided one of each type
    report.calibrations = [
        CalibrationLine(c.task_type, c.id, c.recommended_model, c.threshold, c.decided_at, c.applied_at, c.results)
        for c in latest.values()
    ]
    if registry is not None:
        report.drift = measured_drift(engine, registry)
    return report


def measured_drift(engine: Engine, registry: TaskTypeRegistry) -> list[ShadowDrift]:
    """Shadow drift of every shadowed type, each against its configured ``routing.threshold``."""
    thresholds = {task_type.name: task_type.routing.threshold for task_type in registry}
    return shadow_drift(shadow_attempts(engine), thresholds)


def quality_markdown(report: QualityReport) -> str:
    """The quality section as Markdown (empty when there is nothing to say)."""
    lines: list[str] = []
    if any(line.escalated for line in report.escalation):
        lines += ["## Escalation", "", "| task type | tasks | escalated | failed rungs | actual | all on top rung |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for e in report.escalation:
            lines.append(
                f"| {e.task_type} | {e.tasks} | {e.escalated} | ${pusd_to_usd(e.failed_rungs_pusd):.4f} | "
                f"${pusd_to_usd(e.actual_pusd):.4f} | ${pusd_to_usd(e.all_top_pusd):.4f} ({e.top_model}) |"
            )
        lines.append("")
    if report.calibrations:
        lines += ["## Calibrated routes", ""]
        for c in report.calibrations:
            state = f"applied {c.applied_at:%Y-%m-%d}" if c.applied_at else "not applied"
            decided = f"{c.decided_at:%Y-%m-%d}" if c.decided_at else "?"
            chosen = c.recommended_model or "no model met the bar"
            lines.append(
                f"- {c.task_type}: {chosen} (bar {c.threshold}, decided {decided}, {state}; #{c.calibration_id})"
            )
        lines.append("")
    flagged = [d for d in report.drift if d.drifted]
    if flagged:
        lines += ["## Shadow drift", ""]
        lines += [f"- {d.task_type} on {d.routed_model}: agreement {d.agreement:.0%} with {d.shadow_model} over "
                  f"{d.pairs} tasks (bar {d.threshold})" for d in flagged]  # fmt: skip
    return "\n".join(lines)
