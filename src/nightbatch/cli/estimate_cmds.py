"""``nightbatch estimate``: what a backfill file would cost, before anything is enqueued."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

from nightbatch.cli.app import console, handle_errors, load_settings
from nightbatch.cli.tables import print_table
from nightbatch.db.migrate import upgrade
from nightbatch.deadline.durations import DurationModel, describe_all, expected_finishes, forecast_lines
from nightbatch.forecast import Forecast, forecast_tasks
from nightbatch.queue.taskfile import TaskFileReader
from nightbatch.report.pipelines import pipeline_estimates
from nightbatch.services import Services
from nightbatch.sources import default_task_type_for

GROUP_FIELDS = ("task_type", "model", "tasks", "prefix_tokens", "cache_option", "tail_tokens", "expected_output_tokens",
                "max_output_tokens", "expected_usd", "upper_bound_usd", "counted")  # fmt: skip


def print_durations(services: Services, groups: list[tuple[str, int]]) -> None:
    """How long such batches took before (p50/p95), and when what is in flight should end."""
    now = datetime.now(UTC)
    durations = DurationModel.load(services.engine)
    for line in forecast_lines(durations, groups, now):
        console.print(line, highlight=False)
    for line in describe_all(expected_finishes(services.engine, now, model=durations)):
        console.print(f"in flight: {line}", highlight=False)


def print_forecast(forecast: Forecast, *, title: str) -> None:
    header = ["task type", "model", "tasks", "prefix tok", "cache", "per-task tok", "output tok (exp/max)",
              "expected", "at most"]  # fmt: skip
    rows = [
        [g.task_type, g.model, f"{g.tasks:,}", f"{g.prefix_tokens:,}", g.cache_option, f"{g.tail_tokens:,}",
         f"{g.expected_output_tokens:,} / {g.max_output_tokens:,}", f"${g.expected_usd:,.4f}",
         f"${g.upper_bound_usd:,.4f}"]
        for g in forecast.groups
    ]  # fmt: skip
    print_table(console, header, rows, title=title, text_cols=2)
    console.print(forecast.describe())
    for line in forecast.advice:
        console.print(f"[bold]advice:[/] {line}", highlight=False)
    if forecast.skipped:
        console.print(f"[yellow]{forecast.skipped} tasks of unconfigured types were not priced[/]")


@handle_errors
def estimate(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A JSONL task file."),
    task_type: str | None = typer.Option(None, "--task-type", "-t", help="Task type for lines that name none."),
    offline: bool = typer.Option(False, help="Do not call the token-counting endpoint; estimate locally."),
    as_json: bool = typer.Option(False, "--json", help="Print the forecast as JSON (exact decimal dollars)."),
) -> None:
    """Forecast the batch cost of a task file before enqueueing it (a bad line is named; nothing is written)."""
    settings = load_settings()
    upgrade(settings.resolved_database_url)  # the ledger's history refines the output estimate
    services = Services.from_settings(settings)
    try:
        known = services.registry.names() or None
        default = default_task_type_for(file.name, task_type, known)
        reader = TaskFileReader(file, default_task_type=default, source_name=str(file), task_types=known)
        rows = ((n, spec.task_type, spec.payload, spec.model_override) for n, spec in enumerate(reader, start=1))
        use_api = not offline and (settings.api_key_value() is not None or services.base_url is not None)
        forecast = forecast_tasks(services, rows, use_api=use_api)
        # A first stage's tasks go on through their pipeline: its measured cost per completed item covers them all.
        per_type: dict[str, int] = {}
        for g in forecast.groups:
            per_type[g.task_type] = per_type.get(g.task_type, 0) + g.tasks
        pipelines = pipeline_estimates(services.engine, services.registry, per_type)
        if as_json:
            groups = [
                {k: str(getattr(g, k)) if k.endswith("_usd") else getattr(g, k) for k in GROUP_FIELDS}
                for g in forecast.groups
            ]
            console.print_json(json.dumps({"tasks": forecast.tasks, "expected_usd": str(forecast.expected_usd),
                                           "upper_bound_usd": str(forecast.upper_bound_usd),
                                           "fallback_worst_usd": str(forecast.fallback_worst_usd),
                                           "skipped": forecast.skipped, "groups": groups,
                                           "pipelines": [p.to_dict() for p in pipelines]}))  # fmt: skip
        else:
            print_forecast(forecast, title=f"Forecast for {file}")
            for estimate_line in pipelines:
                console.print(estimate_line.describe(), highlight=False)
            print_durations(services, [(g.model, g.tasks) for g in forecast.groups])
    finally:
        services.close()


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate)
