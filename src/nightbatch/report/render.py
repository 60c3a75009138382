"""A :class:`~nightbatch.report.build.Report` as plain rows, JSON, CSV and Markdown.

Money leaves as exact decimal strings of dollars (``"0.001250000000"``, 12 places: picodollars), never
floats; :func:`usd_text` is the rounded form for people. Rates are floats in [0, 1] (or None).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from nightbatch.pricing import pusd_to_usd
from nightbatch.report.build import Report
from nightbatch.report.cache import TypeCache, hit_rate
from nightbatch.report.costs import CostRow
from nightbatch.report.deadlines import deadline_lines
from nightbatch.report.money import percent_text, usd_text
from nightbatch.report.pipelines import pipeline_lines
from nightbatch.report.prefix import PrefixFigures

__all__ = [
    "COST_COLUMNS",
    "TextTable",
    "batch_text_table",
    "cost_table_rows",
    "cost_text_table",
    "headline",
    "markdown_table",
    "percent_text",
    "pipeline_markdown",
    "prefix_text_table",
    "provenance",
    "report_csv",
    "report_markdown",
    "report_to_dict",
    "savings_text_table",
    "type_cache_text_table",
    "usd",
    "usd_text",
]

Scalar = str | int | float | None

COST_COLUMNS = (
    "task_type",
    "model",
    "tasks",
    "responses",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "cost_usd",
    "cost_per_task_usd",
    "cost_per_success_usd",
    "pass_rate",
    "naive_usd",
    "prefix_sent_tokens",
    "prefix_read_tokens",
    "prefix_written_tokens",
    "prefix_below_minimum_tokens",
    "prefix_not_marked_tokens",
    "prefix_hit_rate",
)
"""Columns of :func:`cost_table_rows` and of the CSV, in order (prefix figures: see ``report.prefix``)."""


def usd(pusd: int | None) -> str | None:
    """Exact dollars as a string (12 decimal places); None stays None."""
    return None if pusd is None else str(pusd_to_usd(pusd))


def _unpriced(row: CostRow) -> bool:
    return row.unpriced > 0 and row.unpriced == row.responses


def _cost_text(row: CostRow) -> str:
    return priced_text(row.cost_pusd, row.unpriced, row.responses)


def priced_text(cost_pusd: int, unpriced: int, responses: int) -> str:
    """A cost that never shows unpriced responses as $0: ``UNPRICED``, or the priced part and a count."""
    if unpriced and unpriced >= responses:
        return "UNPRICED"
    return usd_text(cost_pusd) + (f" (+{unpriced:,} UNPRICED)" if unpriced else "")


def _cost_row(row: CostRow, naive_pusd: int | None) -> dict[str, Scalar]:
    return {
        "task_type": row.task_type,
        "model": row.model,
        "tasks": row.tasks,
        "responses": row.responses,
        "input_tokens": row.usage.input_tokens,
        "output_tokens": row.usage.output_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "cache_read_tokens": row.usage.cache_read_tokens,
        # Wholly unpriced: no figure at all (never $0); the report's warnings name it.
        "cost_usd": None if _unpriced(row) else usd(row.cost_pusd),
        "cost_per_task_usd": None if _unpriced(row) else usd(row.cost_per_task_pusd),
        "cost_per_success_usd": None if _unpriced(row) else usd(row.cost_per_success_pusd),
        "pass_rate": row.pass_rate,
        "naive_usd": usd(naive_pusd),
    }


def cost_table_rows(report: Report, *, total: bool = True) -> list[dict[str, Scalar]]:
    """Cost per task type × model as plain dicts (keys :data:`COST_COLUMNS`), plus a ``total`` row.

    ``naive_usd`` is the naive cost of the row's task responses (None for overhead rows); the total's is
    the whole naive baseline.
    """
    naive = report.savings.naive_by_group
    rows = [_cost_row(r, naive.get((r.task_type, r.model)) if r.purpose == "task" else None) for r in report.costs.rows]
    prefix = {(f.task_type, f.model): f for f in report.prefix}
    for row in rows:
        f = prefix.get((str(row["task_type"]), str(row["model"])))
        row.update(_prefix_columns([f] if f else []))
    if total:
        rows.append({**_cost_row(report.costs.total, report.savings.naive_pusd), **_prefix_columns(report.prefix)})
    return rows


def _prefix_columns(figures: list[PrefixFigures]) -> dict[str, Scalar]:
    if not figures:
        return {k: None for k in COST_COLUMNS if k.startswith("prefix_")}
    sent = sum(f.sent for f in figures)
    read = sum(f.read for f in figures)
    return {
        "prefix_sent_tokens": sent,
        "prefix_read_tokens": read,
        "prefix_written_tokens": sum(f.written for f in figures),
        "prefix_below_minimum_tokens": sum(f.below_minimum for f in figures),
        "prefix_not_marked_tokens": sum(f.not_marked for f in figures),
        "prefix_hit_rate": read / sent if sent else None,
    }


def _type_cache(t: TypeCache) -> dict[str, Scalar]:
    return {
        "task_type": t.task_type,
        "hit_rate": t.hit_rate,
        "cache_read_tokens": t.cache_read_tokens,
        "cache_write_tokens": t.cache_write_tokens,
        "rolling_hit_rate": t.rolling_hit_rate,
        "rolling_runs": t.rolling_runs,
        "drop_points": t.drop_points,
        "flagged": t.flagged,
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The whole report as JSON-ready data (``json.dumps`` it as is)."""
    s, c, sel = report.savings, report.cache, report.selection
    shares = s.shares()
    return {
        "selection": {
            "kind": sel.kind,
            "label": sel.label,
            "run_id": sel.run_id,
            "since": sel.since.isoformat() if sel.since else None,
            "until": sel.until.isoformat() if sel.until else None,
        },
        "generated_at": report.generated_at.isoformat(),
        "price_versions": report.price_versions,
        "repriced_with": report.repriced_with,
        "costs": {"rows": cost_table_rows(report, total=False), "total": cost_table_rows(report)[-1]},
        "cache": {
            "definition": "prefix_hit_rate = prefix tokens read / all prefix tokens sent; "
            "read_share_of_cached = cache_read_tokens / (cache_read_tokens + cache_write_tokens)",
            "prefix_hit_rate": report.prefix_hit_rate,
            "prefix": [f.as_dict() for f in report.prefix],
            "below_plan": report.below_plan,
            "padding_advice": report.advice,
            "read_share_of_cached": c.hit_rate,
            "hit_rate": c.hit_rate,
            "cache_read_tokens": c.cache_read_tokens,
            "cache_write_tokens": c.cache_write_tokens,
            "window_runs": c.window,
            "drop_points_threshold": c.drop_points,
            "min_history_runs": c.min_runs,
            "by_type": [_type_cache(t) for t in c.by_type],
            "by_batch": [
                {
                    "batch_id": b.batch_id,
                    "provider_batch_id": b.provider_batch_id,
                    "model": b.model,
                    "task_type": b.task_type,
                    "cache_ttl": b.cache_ttl,
                    "responses": b.responses,
                    "cache_read_tokens": b.cache_read_tokens,
                    "cache_write_tokens": b.cache_write_tokens,
                    "hit_rate": hit_rate(b.cache_read_tokens, b.cache_write_tokens),
                    "cost_usd": None if b.unpriced >= b.responses else usd(b.cost_pusd),
                    "unpriced_responses": b.unpriced,
                }
                for b in c.by_batch
            ],
            "history": [
                {
                    "run_id": p.run_id,
                    "started_at": p.started_at.isoformat(),
                    "task_type": p.task_type,
                    "hit_rate": p.hit_rate,
                    "in_selection": p.in_selection,
                }
                for p in c.history
            ],
        },
        "savings": {
            "baseline_model": s.baseline_model,
            "naive_usd": usd(s.naive_pusd),
            "routed_usd": usd(s.routed_pusd),
            "batched_usd": usd(s.batched_pusd),
            "actual_usd": usd(s.actual_pusd),
            "saving_usd": usd(s.saving_pusd),
            "saving_fraction": s.saving_fraction,
            "levers": [
                {"lever": name, "saving_usd": usd(value), "share": shares[name]} for name, value in s.levers().items()
            ],
        },
        "daily_costs": [
            {"day": d.day.isoformat(), "model": d.model, "cost_usd": usd(d.cost_pusd), "unpriced_responses": d.unpriced}
            for d in report.daily_costs
        ],
        "deadlines": report.deadlines.to_dict() if report.deadlines else None,
        "pipelines": report.pipelines.to_dict() if report.pipelines else None,
        "warnings": report.warnings,
    }


def report_csv(report: Report) -> str:
    """The cost table as CSV (header :data:`COST_COLUMNS`, last row ``total``). JSON has the rest."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in cost_table_rows(report):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


# -- text tables: the same rows for Markdown, HTML and the terminal ---------------------------------

TextTable = tuple[list[str], list[list[str]]]
"""A header and rows of display strings."""


def cost_text_table(report: Report) -> TextTable:
    """Cost per task type × model for reading; the last row is the total."""
    header = ["task type", "model", "tasks", "input", "output", "cache write", "cache read", "cost", "per task",
              "per success", "pass rate"]  # fmt: skip
    rows = [
        [
            r.task_type,
            r.model,
            f"{r.tasks:,}",
            f"{r.usage.input_tokens:,}",
            f"{r.usage.output_tokens:,}",
            f"{r.cache_write_tokens:,}",
            f"{r.usage.cache_read_tokens:,}",
            _cost_text(r),
            "UNPRICED" if _unpriced(r) else usd_text(r.cost_per_task_pusd),
            "UNPRICED" if _unpriced(r) else usd_text(r.cost_per_success_pusd),
            percent_text(r.pass_rate),
        ]
        for r in [*report.costs.rows, report.costs.total]
    ]
    return header, rows


def savings_text_table(report: Report) -> TextTable:
    """The cost levels, then each lever's saving and share; the last row is naive − actual."""
    s = report.savings
    shares = s.shares()
    rows = [
        [f"naive: real-time {s.baseline_model}, no caching", usd_text(s.naive_pusd), ""],
        ["routed: real-time on the models used, no caching", usd_text(s.routed_pusd), ""],
        ["routed + batched, no caching", usd_text(s.batched_pusd), ""],
        ["actual", usd_text(s.actual_pusd), ""],
    ]
    rows += [[f"{name} saved", usd_text(value), percent_text(shares[name])] for name, value in s.levers().items()]
    everything = percent_text(1.0 if s.saving_pusd > 0 else None)
    rows.append([f"total saved (naive − actual): {percent_text(s.saving_fraction)} of naive", usd_text(s.saving_pusd),
                 everything])  # fmt: skip
    return ["level / lever", "cost", "share of saving"], rows


def prefix_text_table(report: Report) -> TextTable:
    """Prefix tokens per task type × model, by what became of them."""
    header = ["task type", "model", "prefix", "sent", "read", "written", "below minimum", "not marked", "hit rate",
              "read / (read + write)"]  # fmt: skip
    rows = [
        [
            f.task_type,
            f.model,
            f"{f.prefix_tokens:,}",
            f"{f.sent:,}",
            f"{f.read:,}",
            f"{f.written:,}",
            f"{f.below_minimum:,}",
            f"{f.not_marked:,}",
            percent_text(f.hit_rate),
            percent_text(f.read_share),
        ]
        for f in report.prefix
    ]
    return header, rows


def type_cache_text_table(report: Report) -> TextTable:
    """Hit rate per task type against its rolling rate."""
    header = ["task type", "hit rate", f"rolling ({report.cache.window} runs)", "runs", "read", "write", "flag"]
    rows = [
        [
            t.task_type,
            percent_text(t.hit_rate),
            percent_text(t.rolling_hit_rate),
            str(t.rolling_runs),
            f"{t.cache_read_tokens:,}",
            f"{t.cache_write_tokens:,}",
            f"DROP {t.drop_points:.1f} pts" if t.flagged and t.drop_points is not None else "",
        ]
        for t in report.cache.by_type
    ]
    return header, rows


def batch_text_table(report: Report, *, limit: int | None = None) -> TextTable:
    """Hit rate per batch (the first ``limit`` batches when given)."""
    header = ["batch", "provider id", "task type", "model", "TTL", "responses", "hit rate", "cost"]
    batches = report.cache.by_batch if limit is None else report.cache.by_batch[:limit]
    rows = [
        [
            str(b.batch_id),
            b.provider_batch_id or "–",
            b.task_type or "–",
            b.model,
            b.cache_ttl or "–",
            f"{b.responses:,}",
            percent_text(hit_rate(b.cache_read_tokens, b.cache_write_tokens)),
            priced_text(b.cost_pusd, b.unpriced, b.responses),
        ]
        for b in batches
    ]
    return header, rows


def headline(report: Report) -> str:
    """One sentence: billed tasks (each task with a billed response, once), cost, per task, pass rate, naive
    cost, saving, hit rate. "Billed" because twins held by de-duplication and tasks that failed before sending
    are not in it, so it can be fewer than the run's outcome counts."""
    s, total = report.savings, report.costs.total
    return (
        f"{total.tasks:,} billed tasks for {usd_text(total.cost_pusd)} ({usd_text(total.cost_per_task_pusd)} per task, "
        f"{usd_text(total.cost_per_success_pusd)} per successful task, pass rate {percent_text(total.pass_rate)}); "
        f"naive cost {usd_text(s.naive_pusd)} (all real-time {s.baseline_model}, no caching): saving "
        f"{percent_text(s.saving_fraction)}; prefix hit rate {percent_text(report.prefix_hit_rate)} of all prefix "
        f"tokens (read ÷ (read + write): {percent_text(report.cache.hit_rate)})."
    )


def provenance(report: Report) -> str:
    """Which price tables the figures come from."""
    versions = ", ".join(report.price_versions) or "–"
    return f"Costs as recorded with price table {versions}; baselines re-priced with {report.repriced_with}."


def markdown_table(table: TextTable, *, text_cols: int = 1) -> list[str]:
    header, rows = table
    align = ["---" if i < text_cols else "---:" for i in range(len(header))]
    return [f"| {' | '.join(header)} |", f"| {' | '.join(align)} |", *(f"| {' | '.join(r)} |" for r in rows)]


def report_markdown(report: Report) -> str:
    """A Markdown summary: headline, warnings, savings by lever, cost per task type × model, hit rates."""
    lines = [f"# nightbatch cost report: {report.selection.label}", ""]
    if report.empty:
        return "\n".join([*lines, "No billed usage in this selection."]) + "\n"
    lines.append(headline(report))
    lines += ["", *(f"> **Warning:** {w}" for w in report.warnings)] if report.warnings else []
    lines += ["", "## Savings by lever", "", *markdown_table(savings_text_table(report))]
    lines += ["", "## Cost per task", "", *markdown_table(cost_text_table(report), text_cols=2)]
    if report.prefix:
        lines += ["", "## Prefix tokens by task type", "", *markdown_table(prefix_text_table(report))]
        lines += [f"- {a}" for a in report.advice]
    if report.cache.by_type:
        lines += ["", "## Cache hit rate by task type", "", *markdown_table(type_cache_text_table(report))]
    if report.deadlines and (extra := deadline_lines(report.deadlines)):
        lines += ["", "## Deadlines: real-time fallback and batch durations", "", *(f"- {line}" for line in extra)]
    lines += pipeline_markdown(report)
    lines += ["", f"_{provenance(report)}_"]
    return "\n".join(lines) + "\n"


def pipeline_markdown(report: Report) -> list[str]:
    """Pipelines, upstream disagreement, de-duplication and reuse (nightbatch.report.pipelines), when any."""
    found = pipeline_lines(report.pipelines)
    return ["", "## Pipelines, de-duplication and reuse", "", *(f"- {line}" for line in found)] if found else []
