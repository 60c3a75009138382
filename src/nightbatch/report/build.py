"""One report of a selection: cost per task, cache hit rates and savings, read from the ledger once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from nightbatch.pricing import PriceTable
from nightbatch.report.cache import DEFAULT_DROP_POINTS, DEFAULT_MIN_RUNS, DEFAULT_WINDOW, CacheReport, cache_report
from nightbatch.report.costs import CostTable, cost_table
from nightbatch.report.query import (
    DayModelCost,
    Selection,
    batch_cache,
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

    @property
    def empty(self) -> bool:
        return self.costs.total.responses == 0

    @property
    def warnings(self) -> list[str]:
        unpriced = self.savings.unpriced_warning()
        return ([unpriced] if unpriced else []) + self.cache.warnings


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
    else the top of ``registry``'s ladders (:func:`~nightbatch.report.savings.baseline_model_for`).
    """
    baseline = baseline_model or baseline_model_for(registry)
    groups = ledger_groups(engine, selection, prices)
    now = datetime.now(UTC)
    first, last = _chart_window(selection, [g.day for g in groups], now.date())
    return Report(
        selection=selection,
        generated_at=now,
        costs=cost_table(groups, billed_tasks(engine, selection)),
        cache=cache_report(
            groups,
            batch_cache(engine, selection),
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
    )
