"""Two PNG charts of a report: cost per day stacked by model, and cache hit rate per run over time.

Needs matplotlib (the optional ``charts`` extra: ``pip install 'nightbatch[charts]'``); without it
:func:`render_charts` raises :class:`ChartsUnavailableError`, whose message says so. Figures are drawn with
the Agg canvas directly (no pyplot, no global state, no display), which keeps both charts well under a
second. Dollars become floats here only to place bars; no figure is computed from them.
"""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING

from nightbatch.errors import ConfigError
from nightbatch.pricing import pusd_to_usd
from nightbatch.report.build import Report

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["COST_CHART", "HIT_RATE_CHART", "ChartsUnavailableError", "charts_available", "render_charts"]

COST_CHART = "cost_per_day.png"
HIT_RATE_CHART = "hit_rate.png"
CHART_RUNS = 30
"""Runs shown on the hit-rate chart (the latest, up to the selection)."""


class ChartsUnavailableError(ConfigError):
    """matplotlib is not installed."""

    def __init__(self) -> None:
        super().__init__("charts need matplotlib: pip install 'nightbatch[charts]' (tables and JSON need nothing)")


def charts_available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure() -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ChartsUnavailableError() from exc
    return Figure(figsize=(9, 4), dpi=100, layout="constrained")


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def cost_chart(report: Report) -> bytes:
    """Cost per UTC day, one stacked bar segment per model, over the report's chart window."""
    fig = _figure()
    ax = fig.subplots()
    per_day: dict[str, dict[str, float]] = defaultdict(dict)
    unpriced: dict[str, int] = defaultdict(int)
    for d in report.daily_costs:
        per_day[d.model][d.day.isoformat()] = float(pusd_to_usd(d.cost_pusd))
        unpriced[d.model] += d.unpriced
    days = sorted({d.day for d in report.daily_costs})
    if days:
        first, last = report.chart_days or (days[0], days[-1])
        span = (last - first).days + 1
        labels = [(first + timedelta(days=i)).isoformat() for i in range(span)]
        bottom = [0.0] * span
        for model in sorted(per_day):
            heights = [per_day[model].get(day, 0.0) for day in labels]
            # Responses without a price row have no height: the legend says so rather than showing $0.
            missing = f" (+{unpriced[model]:,} UNPRICED responses, not drawn)" if unpriced[model] else ""
            ax.bar(labels, heights, bottom=bottom, label=model + missing)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.legend(loc="upper left", fontsize="small")
        ax.tick_params(axis="x", labelrotation=45, labelsize="small")
    else:
        ax.text(0.5, 0.5, "no billed usage", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("cost (USD)")
    ax.set_title("Cost per day (UTC), by model")
    return _png(fig)


def hit_rate_chart(report: Report) -> bytes:
    """Cache hit rate per run, one line per task type; the selection's runs are shaded."""
    fig = _figure()
    ax = fig.subplots()
    runs = sorted({(p.started_at, p.run_id) for p in report.cache.history})[-CHART_RUNS:]
    position = {run_id: i for i, (_, run_id) in enumerate(runs)}
    points = [p for p in report.cache.history if p.run_id in position]
    by_type: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for p in points:
        by_type[p.task_type].append((position[p.run_id], p.hit_rate * 100))
    for task_type in sorted(by_type):
        xs, ys = zip(*by_type[task_type], strict=True)
        ax.plot(xs, ys, marker="o", label=task_type)
    selected = sorted({position[p.run_id] for p in points if p.in_selection})
    if selected:
        ax.axvspan(selected[0] - 0.5, selected[-1] + 0.5, alpha=0.12, label="selection")
    if runs:
        ax.set_xticks(range(len(runs)), [f"#{rid}\n{start:%m-%d}" for start, rid in runs], fontsize="small")
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no cacheable usage", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 100)
    ax.set_ylabel("hit rate (%)")
    ax.set_title("Cache hit rate per run: read / (read + write) tokens")
    return _png(fig)


def render_charts(report: Report) -> dict[str, bytes]:
    """Both charts as PNG bytes, by file name; :class:`ChartsUnavailableError` without matplotlib."""
    return {COST_CHART: cost_chart(report), HIT_RATE_CHART: hit_rate_chart(report)}
