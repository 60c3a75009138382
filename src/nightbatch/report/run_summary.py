"""The cost report as a run's Prefect artifacts show it: the run summary's Markdown and the cost table's rows.

The run summary's Markdown pane is narrow, so its cost table keeps six columns; the cost table artifact has
every column, plus each row's prefix hit rate, its naive cost and what it saved against that, so cost per
task, cache hit rate and savings read off one table. Rows that serve no task (``(shadow)`` and the like)
are explained under the table rather than left for the reader to guess. A run against the local emulator
says so (:data:`SIMULATED_NOTE`): its figures are not a bill.
"""

from __future__ import annotations

from nightbatch.report.build import Report
from nightbatch.report.costs import CostRow
from nightbatch.report.money import percent_text, usd_text
from nightbatch.report.render import (
    TextTable,
    cost_text_table,
    headline,
    markdown_table,
    pipeline_markdown,
    provenance,
    savings_text_table,
    type_cache_text_table,
)

__all__ = [
    "DISPLAY_COLUMNS",
    "OVERHEAD_ROWS",
    "SIMULATED_NOTE",
    "compact_cost_text_table",
    "cost_display_rows",
    "cost_table_description",
    "summary_markdown",
]

SIMULATED_NOTE = (
    "**SIMULATED**: no API key, so the requests went to nightbatch's local emulator of the API. Tokens, cache "
    "hits and costs are the emulator's accounting at real prices, not a bill; outputs are canned."
)
"""Said first by every artifact of a run without an API key (``Settings.simulated``)."""

OVERHEAD_ROWS = {
    "(shadow)": "a second model's answers to a sample of tasks, to measure the routed model one rung up",
    "(calibration)": "requests that measured a route's quality before it was chosen",
    "(priming)": "cache writes sent ahead of their batch (older ledgers only)",
    "(orphan)": "results a batch billed after its tasks had moved on",
}
"""What each row that serves no single task is: counted in the total cost, never per task."""


def _row_saving(cost_pusd: int, naive_pusd: int | None) -> str:
    return "–" if not naive_pusd else percent_text(1 - cost_pusd / naive_pusd)


# The UI table's columns in order: what an operator reads first (cost, hit rate, saving) before the tokens.
DISPLAY_COLUMNS = ("task type", "model", "tasks", "cost", "per task", "per success", "pass rate", "prefix hit rate",
                   "naive cost", "saved vs naive", "input", "output", "cache write", "cache read")  # fmt: skip


def cost_display_rows(report: Report) -> list[dict[str, str]]:
    """Cost per task type × model keyed by :data:`DISPLAY_COLUMNS` (the UI's table), the last row the total.

    Beside the cost columns: ``prefix hit rate`` (prefix tokens read ÷ all prefix tokens sent, the
    headline's definition), ``naive cost`` (the same responses real-time on the baseline model, no caching:
    :func:`cost_table_description` names the model) and ``saved vs naive``. Rows that serve no task have no
    naive cost: they are not in the baseline.
    """
    header, rows = cost_text_table(report)
    hit_rates = {(f.task_type, f.model): f.hit_rate for f in report.prefix}
    naive = report.savings.naive_by_group
    figures: list[tuple[CostRow, float | None, int | None]] = [
        (r, hit_rates.get((r.task_type, r.model)), naive.get((r.task_type, r.model)) if r.purpose == "task" else None)
        for r in report.costs.rows
    ]
    figures.append((report.costs.total, report.prefix_hit_rate, report.savings.naive_pusd))
    out = []
    for text, (row, hit_rate, naive_pusd) in zip(rows, figures, strict=True):
        shown = dict(zip(header, text, strict=True))
        shown["prefix hit rate"] = percent_text(hit_rate)
        shown["naive cost"] = usd_text(naive_pusd)
        shown["saved vs naive"] = _row_saving(row.cost_pusd, naive_pusd)
        out.append({column: shown[column] for column in DISPLAY_COLUMNS})
    return out


def cost_table_description(report: Report, run_id: int) -> str:
    """The cost table artifact's description: what it is, and what its naive column means."""
    return (
        f"run {run_id}: cost per task type and model; naive = the same responses real-time on "
        f"{report.savings.baseline_model} without caching"
    )


def compact_cost_text_table(report: Report) -> TextTable:
    """Cost per task type × model in six columns (narrow displays: the Prefect UI's Markdown pane)."""
    header, rows = cost_text_table(report)
    keep = [header.index(name) for name in ("task type", "model", "tasks", "cost", "per task", "pass rate")]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


def _overhead_lines(report: Report) -> list[str]:
    labels = sorted({r.task_type for r in report.costs.rows if r.purpose != "task"})
    return [f"- `{label}`: {OVERHEAD_ROWS.get(label, 'serves no single task')}; in the total, not per task"
            for label in labels]  # fmt: skip


def summary_markdown(report: Report) -> str:
    """The cost report for a run summary below its outcome: headline, warnings, savings, narrow cost table,
    hit rates with the padding advice that explains an uncached type, pipelines."""
    lines = [f"## Cost report: {report.selection.label}", ""]
    if report.empty:
        return "\n".join([*lines, "No billed usage in this selection."]) + "\n"
    lines.append(headline(report))
    lines += ["", *(f"> **Warning:** {w}" for w in report.warnings)] if report.warnings else []
    lines += ["", "## Savings by lever", "", *markdown_table(savings_text_table(report))]
    lines += ["", "## Cost per task", "", *markdown_table(compact_cost_text_table(report), text_cols=2), ""]
    lines += _overhead_lines(report)
    lines += ["", "The cost table artifact has every column (tokens, cache reads and writes, per success, "
              "prefix hit rate, naive cost and saving per row)."]  # fmt: skip
    if report.cache.by_type:
        lines += ["", "## Cache hit rate by task type", "", *markdown_table(type_cache_text_table(report))]
        lines += ["", *(f"- {a}" for a in report.advice)] if report.advice else []
    lines += pipeline_markdown(report)
    lines += ["", f"_{provenance(report)}_"]
    return "\n".join(lines) + "\n"
