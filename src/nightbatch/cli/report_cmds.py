"""``nightbatch report``: cost per task, cache hit rates and savings of a run, a day or a date range."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TextIO

import typer
from rich.console import Console
from rich.markdown import Markdown

from nightbatch.cli.app import err_console, handle_errors, load_settings, migrated_engine
from nightbatch.cli.tables import print_table
from nightbatch.config import config_file_path
from nightbatch.db import Engine
from nightbatch.db.run_tasks import run_failures, run_record
from nightbatch.errors import InputError
from nightbatch.pricing import load_price_table
from nightbatch.report.build import Report, build_report
from nightbatch.report.cache import DEFAULT_DROP_POINTS, DEFAULT_WINDOW
from nightbatch.report.deadlines import deadline_lines
from nightbatch.report.history import run_history
from nightbatch.report.html import write_report_page
from nightbatch.report.pipelines import pipeline_lines
from nightbatch.report.quality import quality_markdown, quality_report
from nightbatch.report.query import resolve_selection
from nightbatch.report.render import (
    TextTable,
    batch_text_table,
    cost_text_table,
    headline,
    prefix_text_table,
    provenance,
    report_csv,
    report_to_dict,
    savings_text_table,
    type_cache_text_table,
)
from nightbatch.tasktypes import load_task_types

PIPE_WIDTH = 160
BATCHES_SHOWN = 20
"""Batches listed in the terminal table; JSON lists them all."""


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} {value!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-20") from None


def _failures(engine: Engine, run_id: int | None) -> dict[str, int] | None:
    """A run's failed tasks by error type, those that failed before sending included (kept in its totals)."""
    if run_id is None:
        return None
    failed = run_failures(engine, run_id)
    record = run_record(engine, run_id)
    for error, count in ((record[1] if record else {}).get("failed_before_sending") or {}).items():
        failed[f"{error} (before sending)"] = int(count)
    return failed


def _table(console: Console, table: TextTable, title: str, *, text_cols: int = 1) -> None:
    header, rows = table
    print_table(console, header, rows, title=title, text_cols=text_cols)


def print_report(report: Report, console: Console) -> None:
    """The report as rich tables, with warnings as highlighted lines."""
    console.print(f"[bold]nightbatch cost report: {report.selection.label}[/]", highlight=False)
    if report.empty:
        console.print("no billed usage in this selection")
        return
    console.print(headline(report), highlight=False)
    for warning in report.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    _table(console, cost_text_table(report), "Cost per task", text_cols=2)
    _table(console, savings_text_table(report), "Savings: each lever in turn")
    if report.prefix:
        title = "Prefix tokens by task type: read, written, below the model's minimum, not marked"
        _table(console, prefix_text_table(report), title, text_cols=2)
        for line in report.advice:
            console.print(f"[bold]advice:[/] {line}", highlight=False)
    if report.cache.by_type:
        _table(console, type_cache_text_table(report), "Cache hit rate by task type: read / (read + write)")
    if report.cache.by_batch:
        _table(console, batch_text_table(report, limit=BATCHES_SHOWN), "Cache hit rate by batch", text_cols=5)
        hidden = len(report.cache.by_batch) - BATCHES_SHOWN
        if hidden > 0:
            console.print(f"… and {hidden} more batches (--format json lists them all)")
    for line in deadline_lines(report.deadlines) if report.deadlines else []:
        console.print(line, highlight=False)
    for line in pipeline_lines(report.pipelines):  # pipelines, de-duplication and reuse (nightbatch.pipeline)
        console.print(line, highlight=False)
    console.print(provenance(report), style="dim", highlight=False)


@handle_errors
def report(
    run: int | None = typer.Option(
        None, "--run", help="Report on this run (default: the latest run that billed anything)."
    ),
    day: str | None = typer.Option(None, "--day", help="Report on usage billed on this UTC day (YYYY-MM-DD)."),
    since: str | None = typer.Option(None, "--since", help="First UTC day of a range (YYYY-MM-DD), inclusive."),
    until: str | None = typer.Option(None, "--until", help="Last UTC day of a range (YYYY-MM-DD), inclusive."),
    output_format: ReportFormat = typer.Option(ReportFormat.TABLE, "--format", "-f", help="table, json or csv."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report to this file, not stdout."),
    charts: Path | None = typer.Option(None, "--charts", help="Also write report.html and PNG charts to this folder."),
    baseline_model: str | None = typer.Option(
        None, help="The naive baseline's model (default: the top of the config's escalation ladders)."
    ),
    window: int = typer.Option(DEFAULT_WINDOW, min=1, help="Runs in the rolling cache hit rate."),
    drop_points: float = typer.Option(
        DEFAULT_DROP_POINTS, min=0, help="Flag a task type whose hit rate is this many points below its rolling rate."
    ),
) -> None:
    """Cost per task by task type × model, cache hit rates, and the savings by routing, batching and caching."""
    settings = load_settings()
    with migrated_engine(settings) as engine:
        selection = resolve_selection(
            engine, run_id=run, day=_day(day, "--day"), since=_day(since, "--since"), until=_day(until, "--until")
        )
        prices = load_price_table(settings.price_table)
        task_config = Path(settings.task_config or config_file_path())
        registry = load_task_types(task_config) if task_config.exists() else None
        result = build_report(engine, prices, selection, baseline_model=baseline_model, registry=registry,
                              window=window, drop_points=drop_points)  # fmt: skip
        quality = quality_report(
            engine, prices, selection, registry=registry, baseline_model=result.savings.baseline_model
        )
        failures = _failures(engine, selection.run_id)
        history = (
            run_history(engine, prices, selection, baseline_model=result.savings.baseline_model) if charts else None
        )

    with ExitStack() as stack:
        out: TextIO = sys.stdout
        if output is not None:
            out = stack.enter_context(output.open("w", encoding="utf-8", newline=""))
        if output_format == ReportFormat.JSON:
            data = {**report_to_dict(result), "quality": quality.as_dict(), "failed_tasks": failures or {}}
            out.write(json.dumps(data, indent=2) + "\n")
        elif output_format == ReportFormat.CSV:
            out.write(report_csv(result))
        else:
            # A pipe or file gets the full width (rich would assume 80 columns and squeeze the cost table).
            wide = output is not None or not out.isatty()
            target = Console(file=out, width=PIPE_WIDTH if wide else None, no_color=output is not None)
            print_report(result, target)
            if failures:
                rows = [[error, f"{count:,}"] for error, count in sorted(failures.items())]
                title = f"Failed tasks: {sum(failures.values()):,} (`nightbatch tasks --state failed` lists them)"
                print_table(target, ["error", "tasks"], rows, title=title)
            section = quality_markdown(quality)
            if section:
                target.print(Markdown(section))
    if output_format != ReportFormat.TABLE or output is not None:
        for warning in result.warnings:
            err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    if output is not None:
        err_console.print(f"report written to {output}", highlight=False)
    if charts is not None:
        page = write_report_page(
            result, charts, history=history, failures=failures, quality_markdown=quality_markdown(quality)
        )
        if page.skipped:
            err_console.print(f"[yellow]{page.skipped}[/]", highlight=False)
        err_console.print(f"charts and tables written to {page.html}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
