"""``nightbatch run | submit | collect | demo``: the pipeline, run through its Prefect flows.

The flows live in the top-level ``flows`` package and are imported lazily, inside each command: the
core (``nightbatch.*``) never imports Prefect; the CLI is the outermost adapter. With no
``PREFECT_API_URL`` the flows run in Prefect's embedded mode (a temporary local server), so no server is
needed; with one, the runs show up in its UI.
"""

from __future__ import annotations

from decimal import Decimal

import typer

from nightbatch.cli.app import console, handle_errors, load_settings
from nightbatch.cli.summary import print_summary
from nightbatch.db.migrate import upgrade
from nightbatch.report.summary import summarize
from nightbatch.services import Services


@handle_errors
def run(
    source: str | None = typer.Option(None, help="Enqueue first from this JSONL file, folder or s3:// prefix."),
    task_type: str | None = typer.Option(None, "--task-type", "-t", help="Task type for source lines naming none."),
    only: list[str] = typer.Option([], "--only", help="Submit only these task types (repeatable)."),
    limit: int = typer.Option(100_000, help="At most this many tasks."),
    deadline_minutes: float = typer.Option(24 * 60, help="Stop waiting for batches after this long."),
    poll_seconds: float = typer.Option(60.0, help="Longest pause between polls."),
    budget_usd: Decimal | None = typer.Option(None, help="Hard cap on this run's forecast spend."),
) -> None:
    """Run the nightly flow: enqueue (optional) -> submit -> collect until done or the deadline."""
    from flows.nightly import nightly
    from flows.params import NightlyParams

    settings = load_settings()
    upgrade(settings.resolved_database_url)
    result = nightly(
        NightlyParams(
            source=source,
            source_task_type=task_type,
            task_types=only or None,
            limit=limit,
            deadline_minutes=deadline_minutes,
            poll_seconds=poll_seconds,
            budget_usd=budget_usd,
        )
    )
    services = Services.from_settings(settings)
    try:
        summary = summarize(services.engine, services.prices, run_id=int(result["run_id"]), registry=services.registry)
        print_summary(summary, title="This run")
    finally:
        services.close()


@handle_errors
def submit(
    only: list[str] = typer.Option([], "--only", help="Submit only these task types (repeatable)."),
    limit: int = typer.Option(100_000, help="At most this many tasks."),
) -> None:
    """Submit queued tasks as batches (the submit flow) and return without waiting."""
    from flows.params import SubmitParams
    from flows.submit import submit as submit_flow

    upgrade(load_settings().resolved_database_url)
    console.print(submit_flow(SubmitParams(task_types=only or None, limit=limit)))


@handle_errors
def collect() -> None:
    """Poll open batches once and ingest the ended ones (the collect flow)."""
    from flows.collect import collect as collect_flow

    upgrade(load_settings().resolved_database_url)
    console.print(collect_flow())


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("submit")(submit)
    app.command("collect")(collect)
