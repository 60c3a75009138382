"""One report of a selection: cost per task, cache hit rates and savings, read from the ledger once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from nightbatch.db import Engine
from nightbatch.pricing import PriceTable
from nightbatch.report.cache import DEFAULT_DROP_POINTS, DEFAULT_MIN_RUNS, DEFAULT_WINDOW, CacheReport, cache_report
from nightbatch.report.costs import CostTable, cost_table
from nightbatch.report.deadlines import DeadlineSection, deadline_section
from nightbatch.report.pipelines import PipelineSection, pipeline_section
from nightbatch.report.prefix import PrefixFigures, below_plan, padding_advice, prefix_figures
from nightbatch.report.query import (
    DayModelCost,
    Selection,
    batch_cache,
    batch_plans,
    billed_tasks,
    daily_model_costs,
    ledger_groups,
    price_versions,
    run_cache_history,
)
from nightbatch.report.savings import Savings, baseline_model_for, savings
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["CHART_DAYS", "Report", "build_report"]

CHART_DAYS = 14
"""Days of cost history charted for a run or a single day (a range charts its own days)."""


@dataclass(frozen=True)
class Report:
    """Everything ``nightbatch report`` shows about one selection."""

    selection: Selection
    generated_at: datetime
    costs: CostTable
    cache: CacheReport
    savings: Savings
    price_versions: list[str] = field(default_factory=list)
    """Versions of the price table the ledger's costs were recorded with."""
    repriced_with: str = ""
    """Version of the price table the baselines were re-priced with."""
    daily_costs: list[DayModelCost] = field(default_factory=list)
    """Cost per (UTC day, model) over the chart window."""
    chart_days: tuple[date, date] | None = None
    """The first and last UTC day of the chart window."""
    deadlines: DeadlineSection | None = None
    """The real-time fallback's cost and tasks, and measured batch durations (nightbatch.deadline)."""
    prefix: list[PrefixFigures] = field(default_factory=list)
    """Prefix tokens per task type × model: read, written, below the minimum, not marked."""
    below_plan: list[str] = field(default_factory=list)
    """Fan-out batches whose reads fell well below their plan."""
    advice: list[str] = field(default_factory=list)
    """Padding advice for prefixes below their model's minimum."""
    pipelines: PipelineSection | None = None
    """Cost per completed pipeline item, upstream disagreement, de-duplication and reuse (nightbatch.pipeline)."""

    @property
    def empty(self) -> bool:
        return self.costs.total.responses == 0

    @property
    def warnings(self) -> list[str]:
        unpriced = self.savings.unpriced_warning()
        return ([unpriced] if unpriced else []) + self.cache.warnings + self.below_plan

    @property
    def prefix_sent(self) -> int:
        return sum(f.sent for f in self.prefix)

    @property
    def prefix_hit_rate(self) -> float | None:
        """read ÷ all prefix tokens sent: the headline cache figure."""
        sent = self.prefix_sent
        return sum(f.read for f in self.prefix) / sent if sent else None


def _chart_window(selection: Selection, days: list[date], today: date) -> tuple[date, date]:
    if selection.kind == "range" and selection.since is not None:
        last = selection.until or max(days, default=today)
        return selection.since, max(last, selection.since)
    last = max(days, default=selection.until or today)
    if selection.run_started_at is not None:
        last = max(last, selection.run_started_at.date())
    return last - timedelta(days=CHART_DAYS - 1), last


def build_report(
    engine: Engine,
    prices: PriceTable,
    selection: Selection,
    *,
    baseline_model: str | None = None,
    registry: TaskTypeRegistry | None = None,
    window: int = DEFAULT_WINDOW,
    drop_points: float = DEFAULT_DROP_POINTS,
    min_runs: int = DEFAULT_MIN_RUNS,
) -> Report:
    """Read the ledger for ``selection`` and compute its report.

    ``window`` runs form the rolling hit rate; a task type whose hit rate is more than ``drop_points``
    below it (with at least ``min_runs`` runs of history) is flagged. Baselines are re-priced with
    ``prices`` (see :mod:`nightbatch.report.savings`); the naive baseline's model is ``baseline_model``,
    else the top of ``registry``'s ladders, else the top model billed
    (:func:`~nightbatch.report.savings.baseline_model_for`).
    """
    groups = ledger_groups(engine, selection, prices)
    baseline = baseline_model or baseline_model_for(registry, (g.model for g in groups))
    batches = batch_cache(engine, selection)
    plans = batch_plans(engine, [b.batch_id for b in batches])
    prefix = prefix_figures(batches, plans)
    now = datetime.now(UTC)
    first, last = _chart_window(selection, [g.day for g in groups], now.date())
    return Report(
        selection=selection,
        generated_at=now,
        costs=cost_table(groups, billed_tasks(engine, selection)),
        cache=cache_report(
            groups,
            batches,
            run_cache_history(engine, selection),
            selection,
            window=window,
            drop_points=drop_points,
            min_runs=min_runs,
        ),
        savings=savings(groups, prices, baseline_model=baseline),
        price_versions=price_versions(engine, selection),
        repriced_with=prices.version,
        daily_costs=daily_model_costs(engine, first, last),
        chart_days=(first, last),
        deadlines=deadline_section(engine, run_id=selection.run_id),
        prefix=prefix,
        below_plan=below_plan(batches, plans),
        advice=advice_for(prefix, prices),
        pipelines=pipeline_section(
            engine, registry, selection.usage_filter(), since=_twins_since(selection), until=_twins_until(selection)
        ),
    )


def _twins_since(selection: Selection) -> datetime | None:
    """From when twins belong to the selection (they have no usage row to select them by)."""
    if selection.run_started_at is not None:
        return selection.run_started_at
    return None if selection.since is None else datetime.combine(selection.since, datetime.min.time(), UTC)


def _twins_until(selection: Selection) -> datetime | None:
    if selection.run_started_at is not None or selection.until is None:
        return None
    return datetime.combine(selection.until + timedelta(days=1), datetime.min.time(), UTC)


def advice_for(prefix: list[PrefixFigures], prices: PriceTable) -> list[str]:
    """Padding advice for each task type × model whose prefix was below the model's minimum."""
    lines = []
    for f in prefix:
        if f.below_minimum and f.responses:
            found = padding_advice(f.task_type, f.model, f.prefix_tokens, f.responses, prices)
            if found is not None:
                lines.append(found.text())
    return lines
