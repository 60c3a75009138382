"""Per-run figures over time, for the charts: savings by lever and cost by task type × model, per run.

The runs are the latest ``runs`` that billed task responses, up to the report's selection (the same runs
the cache history uses). Money stays in integer picodollars here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from nightbatch.db import Engine
from nightbatch.pricing import PriceTable
from nightbatch.report.query import Selection, ledger_groups, run_cache_history
from nightbatch.report.savings import BASELINE_MODEL, savings

__all__ = ["HISTORY_RUNS", "RunFigures", "run_history"]

HISTORY_RUNS = 14


@dataclass(frozen=True)
class RunFigures:
    run_id: int
    started_at: datetime
    actual_pusd: int
    naive_pusd: int
    levers: dict[str, int]
    """Saving per lever (routing, batching, caching), picodollars."""
    cost_by_type_model: dict[str, int] = field(default_factory=dict)
    """``"task type · model"`` (``(overhead)`` for rows serving no task) -> picodollars."""


def run_history(
    engine: Engine,
    prices: PriceTable,
    selection: Selection,
    *,
    runs: int = HISTORY_RUNS,
    baseline_model: str = BASELINE_MODEL,
) -> list[RunFigures]:
    """Figures of the latest ``runs`` billed runs up to ``selection``, oldest first."""
    seen: dict[int, datetime] = {}
    for point in run_cache_history(engine, selection, runs=runs):
        seen.setdefault(point.run_id, point.started_at)
    out = []
    for run_id, started_at in sorted(seen.items(), key=lambda item: (item[1], item[0])):
        groups = ledger_groups(engine, Selection.run(run_id, started_at))
        levels = savings(groups, prices, baseline_model=baseline_model)
        by_key: dict[str, int] = defaultdict(int)
        for g in groups:
            by_key[f"{g.task_type or '(overhead)'} · {g.model}"] += g.cost_pusd
        out.append(RunFigures(run_id, started_at, levels.actual_pusd, levels.naive_pusd, levels.levers(),
                              dict(by_key)))  # fmt: skip
    return out
