"""Cost per task, cache hit rate and savings, computed from the usage the API returned.

>>> selection = resolve_selection(engine, run_id=12)          # or day=..., since=/until=, or none: latest run
>>> report = build_report(engine, prices, selection)
>>> report_markdown(report)                                    # or cost_table_rows / report_to_dict / report_csv
>>> write_report_page(report, Path("reports/run-12"))          # report.html + two PNG charts (matplotlib)

Modules, in the order the data flows: ``query`` (:class:`Selection` and the ledger reads, which live in
:mod:`nightbatch.db.queries`: this package reads through them and never writes SQL), ``costs``
(cost per task type × model, pass rates), ``cache`` (hit rates, rolling window, drops), ``savings`` (the
naive baseline and the routing / batching / caching levers), ``build`` (one :class:`Report`),
``render`` (rows, JSON, CSV, Markdown), ``charts`` and ``html`` (PNG charts and the HTML page), and
``summary`` (the short run summary the flows print).
"""

from __future__ import annotations

from nightbatch.report.build import Report, build_report
from nightbatch.report.cache import CacheReport, TypeCache, hit_rate
from nightbatch.report.charts import ChartsUnavailableError, charts_available, render_charts
from nightbatch.report.costs import CostRow, CostTable
from nightbatch.report.html import ReportPage, report_html, write_report_page
from nightbatch.report.query import Selection, resolve_selection
from nightbatch.report.render import COST_COLUMNS, cost_table_rows, report_csv, report_markdown, report_to_dict
from nightbatch.report.savings import BASELINE_MODEL, Savings
from nightbatch.report.summary import RunSummary, summarize

__all__ = [
    "BASELINE_MODEL",
    "COST_COLUMNS",
    "CacheReport",
    "ChartsUnavailableError",
    "CostRow",
    "CostTable",
    "Report",
    "ReportPage",
    "RunSummary",
    "Savings",
    "Selection",
    "TypeCache",
    "build_report",
    "charts_available",
    "cost_table_rows",
    "hit_rate",
    "render_charts",
    "report_csv",
    "report_html",
    "report_markdown",
    "report_to_dict",
    "resolve_selection",
    "summarize",
    "write_report_page",
]
