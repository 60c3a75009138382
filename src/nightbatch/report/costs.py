"""Cost per task, by task type × model: tokens, cost, mean cost per task and per *successful* task, pass rate.

Definitions (also in ``docs/reports.md``):

- **tasks**: distinct tasks with at least one billed task response on that model in the selection. A
  task escalated from one model to another counts once under each; the totals count it once.
- **passed**: the task's newest billed response is this one and the task ended ``succeeded``.
- **failed its check**: the task's newest billed response is this one and the task has
  ``error_type = output_check`` (it ended ``failed``, or is queued for the next rung of its escalation
  ladder); or the task was billed again later (a billed response is only ever re-done because its
  output was not accepted: escalated to a higher model).
- **pass rate** = passed / (passed + failed its check). Tasks still in flight, or that failed without
  a billed response to judge, count in neither.
- **cost per successful task** = all the group's cost / passed tasks: failures are paid for by successes.

Usage rows that serve no single task are rows of their own, labelled by purpose: ``(priming)``,
``(calibration)``, ``(shadow)``; they count in the total cost but have no tasks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from nightbatch.db.models import TaskStatus, UsagePurpose
from nightbatch.pricing import Usage
from nightbatch.report.query import BilledTask, LedgerGroup

__all__ = ["CHECK_FAILED", "CostRow", "CostTable", "cost_table", "mean_pusd", "pass_rate"]

CHECK_FAILED = "output_check"
"""The ``task.error_type`` of a task whose billed output failed its type's checks."""


def mean_pusd(total_pusd: int, count: int) -> int | None:
    """``total / count`` rounded to the picodollar (half to even); None when ``count`` is 0."""
    if count <= 0:
        return None
    return int((Decimal(total_pusd) / count).to_integral_value(ROUND_HALF_EVEN))


def pass_rate(passed: int, failed: int) -> float | None:
    """passed / (passed + failed), None when neither happened."""
    judged = passed + failed
    return passed / judged if judged else None


@dataclass(frozen=True)
class CostRow:
    """One line of the cost table: a task type on a model (or an overhead purpose on a model)."""

    task_type: str
    model: str
    purpose: str
    tasks: int
    responses: int
    usage: Usage
    cost_pusd: int
    passed: int
    failed_check: int
    unpriced: int = 0
    """Of ``responses``, those without a price (NULL cost): their cost is not in ``cost_pusd``."""

    @property
    def cache_write_tokens(self) -> int:
        return self.usage.cache_write_5m_tokens + self.usage.cache_write_1h_tokens

    @property
    def cost_per_task_pusd(self) -> int | None:
        return mean_pusd(self.cost_pusd, self.tasks)

    @property
    def cost_per_success_pusd(self) -> int | None:
        return mean_pusd(self.cost_pusd, self.passed)

    @property
    def pass_rate(self) -> float | None:
        return pass_rate(self.passed, self.failed_check)


@dataclass(frozen=True)
class CostTable:
    """The cost rows, sorted by task type then model, overhead rows last, and their total."""

    rows: list[CostRow] = field(default_factory=list)
    total: CostRow = field(default_factory=lambda: CostRow("total", "", "", 0, 0, Usage(), 0, 0, 0))


def _verdicts(billed: Iterable[BilledTask]) -> tuple[dict[tuple[str, str], dict[int, str]], dict[int, str]]:
    """Per (task type, model) and overall: each task's verdict ``passed``, ``failed`` or ``open``."""
    per_group: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    overall: dict[int, str] = {}
    for row in billed:
        if row.latest:
            if row.status == TaskStatus.SUCCEEDED:
                verdict = "passed"
            elif row.error_type == CHECK_FAILED:
                verdict = "failed"  # ended failed, or waiting to be escalated
            else:
                verdict = "open"
        else:
            verdict = "failed"  # billed again later: this response was not accepted
        group = per_group[(row.task_type, row.model)]
        # The newest response decides; an older one only speaks when the newest is elsewhere.
        if row.latest or row.task_id not in group:
            group[row.task_id] = verdict
        if row.latest or row.task_id not in overall:
            overall[row.task_id] = verdict
    return per_group, overall


def _count(verdicts: dict[int, str], verdict: str) -> int:
    return sum(1 for v in verdicts.values() if v == verdict)


def cost_table(groups: Iterable[LedgerGroup], billed: Iterable[BilledTask]) -> CostTable:
    """Cost per task type × model from the selection's ledger groups and billed tasks."""
    per_group, overall = _verdicts(billed)
    sums: dict[tuple[str, str, str], tuple[int, Usage, int]] = {}
    unpriced: dict[tuple[str, str, str], int] = {}
    for g in groups:
        if g.purpose == UsagePurpose.TASK and g.task_type is not None:
            key = (g.task_type, g.model, g.purpose)
        else:
            key = (f"({g.purpose})", g.model, g.purpose)
        responses, usage, cost = sums.get(key, (0, Usage(), 0))
        sums[key] = (responses + g.responses, usage + g.usage, cost + g.cost_pusd)
        unpriced[key] = unpriced.get(key, 0) + g.unpriced
    rows = []
    for (task_type, model, purpose), (responses, usage, cost) in sums.items():
        verdicts = per_group.get((task_type, model), {}) if purpose == UsagePurpose.TASK else {}
        rows.append(
            CostRow(
                task_type=task_type,
                model=model,
                purpose=purpose,
                tasks=len(verdicts),
                responses=responses,
                usage=usage,
                cost_pusd=cost,
                passed=_count(verdicts, "passed"),
                failed_check=_count(verdicts, "failed"),
                unpriced=unpriced[(task_type, model, purpose)],
            )
        )
    rows.sort(key=lambda r: (r.purpose != UsagePurpose.TASK, r.task_type, -r.cost_pusd, r.model))
    total = CostRow(
        task_type="total",
        model="",
        purpose="",
        tasks=len(overall),
        responses=sum(r.responses for r in rows),
        usage=sum((r.usage for r in rows), Usage()),
        cost_pusd=sum(r.cost_pusd for r in rows),
        passed=_count(overall, "passed"),
        failed_check=_count(overall, "failed"),
        unpriced=sum(r.unpriced for r in rows),
    )
    return CostTable(rows=rows, total=total)
