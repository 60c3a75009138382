"""Pipelines in the report: cost per completed pipeline item, the upstream steps' disagreement, and what
de-duplication and reuse saved.

* A pipeline is named after its first stage's task type; its **items** are that type's tasks, each with
  every stage task it set off (:class:`nightbatch.db.models.TaskStage`). An item is **completed** when
  all its tasks succeeded. **Cost per completed item** = everything the selection's items cost (every
  stage, escalation, shadow and retry: all their usage rows in the selection) divided by the items
  completed, so items that failed or stopped part-way are paid for by the ones that made it: the unit
  cost of the pipeline's output. Items are those with usage in the selection (a de-duplicated first-stage
  twin counts with its leader).
* An upstream step's errors compound: for each type some stage runs after, the shadow sample (the same
  request one rung up, ``routing.shadow_fraction``) gives its **disagreement rate** (shadow output ≠
  routed output, compared as :func:`nightbatch.quality.checks.agrees` does), and the report counts the
  downstream tasks built on outputs the higher rung disagreed with.
* **De-duplication** and **reuse** are levers beside routing, batching and caching, outside those three
  (the ledger has no row for a twin: it cost nothing): each twin saved what its leader's request cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from nightbatch.db import Engine
from nightbatch.db.engine import reading
from nightbatch.db.queries.pipelines import dedup_leaders, pipeline_tasks, shadow_pairs, task_costs, twin_savings
from nightbatch.pipeline.graph import StageGraph
from nightbatch.pricing import pusd_to_usd
from nightbatch.quality.checks import agrees
from nightbatch.report.money import usd_text
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = [
    "PipelineEstimate",
    "PipelineFigures",
    "PipelineSection",
    "UpstreamFigures",
    "pipeline_estimates",
    "pipeline_lines",
    "pipeline_section",
]


@dataclass(frozen=True)
class PipelineFigures:
    """One pipeline's items in the selection and what they cost."""

    pipeline: str
    stages: list[str]
    items: int
    completed: int
    open: int
    stage_tasks: int
    cost_pusd: int
    unpriced: int

    @property
    def per_completed_pusd(self) -> int | None:
        return self.cost_pusd // self.completed if self.completed else None


@dataclass(frozen=True)
class UpstreamFigures:
    """An upstream step measured one rung up: how often the shadow disagreed, and what was built on those."""

    task_type: str
    shadowed: int
    disagreed: int
    downstream_on_disagreed: int

    @property
    def disagreement_rate(self) -> float | None:
        return self.disagreed / self.shadowed if self.shadowed else None


@dataclass(frozen=True)
class PipelineSection:
    pipelines: list[PipelineFigures] = field(default_factory=list)
    upstream: list[UpstreamFigures] = field(default_factory=list)
    twins: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (tasks, picodollars saved)

    @property
    def empty(self) -> bool:
        return not self.pipelines and not self.twins

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition": "cost per completed item = all usage of the selection's pipeline items (every stage, "
            "escalation and shadow) / items whose every task succeeded",
            "pipelines": [
                {
                    **asdict(p),
                    "cost_usd": str(pusd_to_usd(p.cost_pusd)),
                    "per_completed_item_usd": None
                    if p.per_completed_pusd is None
                    else str(pusd_to_usd(p.per_completed_pusd)),
                }
                for p in self.pipelines
            ],
            "upstream": [{**asdict(u), "disagreement_rate": u.disagreement_rate} for u in self.upstream],
            "levers": [
                {
                    "lever": "de-duplication" if kind == "dedup" else "reuse",
                    "tasks": n,
                    "saving_usd": str(pusd_to_usd(c)),
                }
                for kind, (n, c) in sorted(self.twins.items())
            ],
        }


def _order(graph: StageGraph, root: str) -> list[str]:
    return graph.closure([root])


def pipeline_section(
    engine: Engine,
    registry: TaskTypeRegistry | None,
    usage_filter: list[Any],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> PipelineSection | None:
    """The pipeline figures of the usage rows ``usage_filter`` selects; None when there is nothing to show.

    ``since`` / ``until`` bound when twins were made (a twin has no usage row to select it by).
    """
    graph = StageGraph.of(registry) if registry is not None else StageGraph({}, {}, {})
    firsts = sorted({graph.root(t) for t in graph.specs})
    with reading(engine) as conn:
        tasks = pipeline_tasks(conn, firsts)
        costs = task_costs(conn, [t.task_id for t in tasks], usage_filter) if tasks else {}
        twins = twin_savings(conn, since, until)
        leaders = dedup_leaders(conn) if tasks else {}
        pairs = shadow_pairs(conn, sorted(graph.downstream))
    by_root: dict[int, list[Any]] = {}
    for task in tasks:
        by_root.setdefault(task.root_task_id, []).append(task)
    types = {t.task_id: t.task_type for t in tasks}
    in_selection = {root for root, members in by_root.items() if any(m.task_id in costs for m in members)}
    in_selection |= {twin for twin, leader in leaders.items() if leader in in_selection and twin in by_root}
    figures = []
    for first in firsts:
        roots = [r for r in in_selection if types.get(r) == first]
        if not roots:
            continue
        members = [m for r in roots for m in by_root[r]]
        done = [r for r in roots if all(m.status == "succeeded" for m in by_root[r])]
        unsettled = [r for r in roots if any(m.status in ("queued", "claimed", "submitted") for m in by_root[r])]
        figures.append(PipelineFigures(
            pipeline=first, stages=_order(graph, first), items=len(roots), completed=len(done), open=len(unsettled),
            stage_tasks=sum(m.upstream_task_id is not None for m in members),
            cost_pusd=sum(costs.get(m.task_id, (0, 0))[0] for m in members),
            unpriced=sum(costs.get(m.task_id, (0, 0))[1] for m in members),
        ))  # fmt: skip
    built_on: dict[int, int] = {}
    for task in tasks:
        if task.upstream_task_id is not None:
            built_on[task.upstream_task_id] = built_on.get(task.upstream_task_id, 0) + 1
    upstream = []
    for task_type in sorted(graph.downstream):
        mine = [(task_id, routed, shadow) for task_id, kind, routed, shadow in pairs if kind == task_type]
        disagreed = [task_id for task_id, routed, shadow in mine if not agrees(routed, shadow)]
        upstream.append(
            UpstreamFigures(task_type, len(mine), len(disagreed), sum(built_on.get(t, 0) for t in disagreed))
        )
    section = PipelineSection(figures, [u for u in upstream if u.shadowed or figures], twins)
    return None if section.empty else section


def _usd(pusd: int) -> str:
    return usd_text(pusd)  # the report's one rounding rule: a twin's saving of $0.00001 is not "$0.0000"


def pipeline_lines(section: PipelineSection | None) -> list[str]:
    """The section as plain lines (terminal, Markdown bullets, artifacts)."""
    if section is None:
        return []
    lines = []
    for p in section.pipelines:
        per = "n/a (none completed)" if p.per_completed_pusd is None else _usd(p.per_completed_pusd)
        unpriced = f", {p.unpriced} unpriced response(s) not in the cost" if p.unpriced else ""
        lines.append(
            f"pipeline {p.pipeline} ({' -> '.join(p.stages)}): {p.completed:,} of {p.items:,} items completed"
            f"{f', {p.open:,} still open' if p.open else ''}, {p.stage_tasks:,} stage tasks; cost {_usd(p.cost_pusd)}, "
            f"per completed item {per}{unpriced}"
        )
    for u in section.upstream:
        if not u.shadowed:
            lines.append(f"upstream {u.task_type}: no shadow sample (set routing.shadow_fraction to measure "
                         "its disagreement one rung up)")  # fmt: skip
            continue
        lines.append(
            f"upstream {u.task_type}: the next rung disagreed on {u.disagreed:,} of {u.shadowed:,} shadowed results "
            f"({u.disagreement_rate:.1%}); {u.downstream_on_disagreed:,} downstream task(s) were built on those"
        )
    for kind, (n, saved) in sorted(section.twins.items()):
        name = "de-duplication" if kind == "dedup" else "reuse"
        what = "identical requests sent once" if kind == "dedup" else "answered from an earlier identical request"
        lines.append(f"{name}: {n:,} task(s) {what}, no request of their own: saved {_usd(saved)}")
    return lines


@dataclass(frozen=True)
class PipelineEstimate:
    """What a file of first-stage tasks is expected to cost through its whole pipeline, from the ledger's history."""

    pipeline: str
    stages: list[str]
    tasks: int
    measured_items: int
    per_completed_pusd: int | None

    @property
    def expected_pusd(self) -> int | None:
        return None if self.per_completed_pusd is None else self.per_completed_pusd * self.tasks

    def to_dict(self) -> dict[str, Any]:
        per, total = self.per_completed_pusd, self.expected_pusd
        return {"pipeline": self.pipeline, "stages": self.stages, "tasks": self.tasks,
                "measured_completed_items": self.measured_items,
                "per_completed_item_usd": None if per is None else str(pusd_to_usd(per)),
                "expected_pipeline_usd": None if total is None else str(pusd_to_usd(total))}  # fmt: skip

    def describe(self) -> str:
        chain = " -> ".join(self.stages)
        if self.per_completed_pusd is None or self.expected_pusd is None:
            return (f"pipeline {self.pipeline} ({chain}): no completed item measured yet, so the later stages are "
                    "not in this forecast")  # fmt: skip
        return (f"pipeline {self.pipeline} ({chain}): {_usd(self.per_completed_pusd)} per completed item, measured "
                f"over {self.measured_items:,} items: about {_usd(self.expected_pusd)} for these {self.tasks:,} tasks "
                "through every stage (escalations and shadows included)")  # fmt: skip


def pipeline_estimates(
    engine: Engine, registry: TaskTypeRegistry, tasks_by_type: dict[str, int]
) -> list[PipelineEstimate]:
    """For each first stage in ``tasks_by_type``: the pipeline's measured cost per completed item, applied to them."""
    graph = StageGraph.of(registry)
    firsts = [t for t in sorted(tasks_by_type) if t in graph.downstream and t not in graph.upstream]
    if not firsts:
        return []
    section = pipeline_section(engine, registry, [])
    measured = {p.pipeline: p for p in section.pipelines} if section is not None else {}
    return [
        PipelineEstimate(
            first,
            _order(graph, first),
            tasks_by_type[first],
            measured[first].completed if first in measured else 0,
            measured[first].per_completed_pusd if first in measured else None,
        )
        for first in firsts
    ]
