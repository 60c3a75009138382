"""One self-contained HTML page of a report: headline, warnings, failures, the charts (embedded), the tables
and the quality section (escalation, calibrated routes, shadow drift) — what the text report shows.

:func:`write_report_page` writes ``report.html`` plus the PNGs beside it. Without matplotlib the page is
still written, with the tables and a note in place of the charts.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from nightbatch.report.build import Report
from nightbatch.report.charts import (
    COST_CHART,
    HIT_RATE_CHART,
    SAVINGS_CHART,
    TYPE_MODEL_CHART,
    ChartsUnavailableError,
    render_charts,
)
from nightbatch.report.history import RunFigures
from nightbatch.report.render import (
    TextTable,
    batch_text_table,
    cost_text_table,
    headline,
    prefix_text_table,
    provenance,
    savings_text_table,
    type_cache_text_table,
)

__all__ = ["PAGE", "ReportPage", "report_html", "write_report_page"]

PAGE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
tr.total td { font-weight: 600; border-top: 2px solid #999; }
.warning { background: #fff3cd; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; margin: 0.4rem 0; }
.note { color: #666; }
img { max-width: 100%; display: block; margin: 0.5rem 0 1.5rem; }
"""


def _table(table: TextTable, *, total_last: bool = False, text_cols: int = 1) -> str:
    header, rows = table
    head = "".join(f'<th class="text">{escape(h)}</th>' if j < text_cols else f"<th>{escape(h)}</th>"
                   for j, h in enumerate(header))  # fmt: skip
    body = []
    for i, row in enumerate(rows):
        cls = ' class="total"' if total_last and i == len(rows) - 1 else ""
        cells = "".join(f'<td class="text">{escape(v)}</td>' if j < text_cols else f"<td>{escape(v)}</td>"
                        for j, v in enumerate(row))  # fmt: skip
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _markdown(text: str) -> str:
    """The small Markdown the quality section uses (## headings, - bullets, pipe tables) as HTML."""
    out: list[str] = []
    table: list[list[str]] = []
    bullets: list[str] = []

    def flush() -> None:
        if table:
            header, *rows = [r for r in table if not all(set(c) <= set("-: ") for c in r)]
            out.append(_table((header, rows)))
            table.clear()
        if bullets:
            out.append("<ul>" + "".join(f"<li>{escape(b)}</li>" for b in bullets) + "</ul>")
            bullets.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        if line.startswith("- "):
            bullets.append(line[2:])
            continue
        flush()
        if line.startswith("## "):
            out.append(f"<h2>{escape(line[3:])}</h2>")
        elif line.strip():
            out.append(f"<p>{escape(line)}</p>")
    flush()
    return "\n".join(out)


CHART_TITLES = (
    (SAVINGS_CHART, "savings by lever per run"),
    (TYPE_MODEL_CHART, "cost per run by task type and model"),
    (HIT_RATE_CHART, "cache hit rate per task type and run"),
    (COST_CHART, "cost per day by model"),
)


def report_html(
    report: Report,
    charts: Mapping[str, bytes] | None = None,
    *,
    note: str | None = None,
    failures: Mapping[str, int] | None = None,
    quality_markdown: str = "",
) -> str:
    """The page as a string; ``charts`` (file name -> PNG bytes) are embedded as data URIs.

    ``failures``: failed tasks by error type (a run's, incl. those that failed before sending);
    ``quality_markdown``: :func:`nightbatch.report.quality.quality_markdown` of the same selection.
    """
    parts = [f"<h1>nightbatch cost report: {escape(report.selection.label)}</h1>", f"<p>{escape(headline(report))}</p>"]
    parts += [f'<div class="warning">{escape(w)}</div>' for w in report.warnings]
    if failures:
        total = sum(failures.values())
        parts.append(f"<h2>Failed tasks: {total:,}</h2>")
        parts.append(_table((["error", "tasks"], [[e, f"{n:,}"] for e, n in sorted(failures.items())])))
    for name, title in CHART_TITLES:
        if charts and name in charts:
            data = base64.b64encode(charts[name]).decode("ascii")
            parts.append(f'<img alt="{title}" src="data:image/png;base64,{data}">')
    if note:
        parts.append(f'<p class="note">{escape(note)}</p>')
    parts += ["<h2>Savings by lever</h2>", _table(savings_text_table(report), total_last=True)]
    parts += ["<h2>Cost per task</h2>", _table(cost_text_table(report), total_last=True, text_cols=2)]
    if report.prefix:
        parts += ["<h2>Prefix tokens by task type</h2>", _table(prefix_text_table(report), text_cols=2)]
        parts += [f'<p class="note">{escape(a)}</p>' for a in report.advice]
    parts += ["<h2>Cache hit rate by task type</h2>", _table(type_cache_text_table(report))]
    parts += ["<h2>Cache hit rate by batch</h2>", _table(batch_text_table(report), text_cols=5)]
    if quality_markdown.strip():
        parts.append(_markdown(quality_markdown))
    generated = f"Generated {report.generated_at:%Y-%m-%d %H:%M} UTC."
    parts.append(f'<p class="note">{escape(provenance(report))} {generated}</p>')
    title = escape(f"nightbatch report: {report.selection.label}")
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


@dataclass(frozen=True)
class ReportPage:
    """What :func:`write_report_page` wrote; ``skipped`` says why the charts are missing, if they are."""

    html: Path
    charts: list[Path] = field(default_factory=list)
    skipped: str | None = None


def write_report_page(
    report: Report,
    directory: Path,
    *,
    history: list[RunFigures] | None = None,
    failures: Mapping[str, int] | None = None,
    quality_markdown: str = "",
) -> ReportPage:
    """Write ``report.html`` and the chart PNGs into ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    skipped: str | None = None
    try:
        charts = render_charts(report, history)
    except ChartsUnavailableError as exc:
        charts, skipped = {}, f"charts skipped: {exc}"
    written = []
    for name, png in charts.items():
        path = directory / name
        path.write_bytes(png)
        written.append(path)
    page = directory / PAGE
    html = report_html(report, charts, note=skipped, failures=failures, quality_markdown=quality_markdown)
    page.write_text(html, encoding="utf-8")
    return ReportPage(html=page, charts=written, skipped=skipped)
