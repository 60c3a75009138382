"""``nightbatch run | submit | collect``: the pipeline, run through its Prefect flows.

The flows live in the top-level ``flows`` package and are imported lazily, inside each command, after
:func:`~nightbatch.cli.flow_runs.prepare_prefect` has set Prefect's environment: the core
(``nightbatch.*``) never imports Prefect; the CLI is the outermost adapter. With no ``PREFECT_API_URL``
the flows run in Prefect's embedded mode (a temporary local server), so no server is needed; with one,
the runs show up in its UI. Exit codes follow the outcome policy: 0 ok, 1 problems, 2 usage errors.

Settings are read once, here, and handed to the flow as its ``settings`` parameter without the secrets
(:meth:`~nightbatch.config.Settings.public_values`; see :mod:`flows.runtime` for why and where the API
key and the database password are resolved).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import typer

from nightbatch.cli.app import console, handle_errors, load_settings, migrated_engine
from nightbatch.cli.flow_runs import FlowResult, prepare_prefect, require_api, run_flow
from nightbatch.cli.progress import watch
from nightbatch.cli.summary import print_summary, print_verdict
from nightbatch.config import Settings
from nightbatch.db.progress import collect_probe, queued_tasks, run_probe, submit_probe
from nightbatch.db.run_tasks import batch_progress
from nightbatch.report.summary import summarize
from nightbatch.services import Services

JSON_OPTION = typer.Option(False, "--json", help="Print the result as JSON (for scripts), no progress.")


def _ready() -> Settings:
    """Settings, the API check and Prefect's environment, all before Prefect is imported."""
    settings = load_settings()
    require_api(settings)
    prepare_prefect(settings)
    return settings


def _finish(result: FlowResult, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps({"ok": result.ok, "message": result.message, **result.data}, default=str))
    raise typer.Exit(result.exit_code)


@handle_errors
def run(
    source: str | None = typer.Option(None, help="Enqueue first from this JSONL file, folder or s3:// prefix."),
    task_type: str | None = typer.Option(None, "--task-type", "-t", help="Task type for source lines naming none."),
    only: list[str] = typer.Option([], "--only", help="Submit only these task types (repeatable)."),
    limit: int = typer.Option(100_000, help="At most this many tasks."),
    deadline_minutes: float = typer.Option(24 * 60, help="Stop waiting for batches after this long."),
    poll_seconds: float = typer.Option(60.0, help="Longest pause between polls."),
    budget_usd: Decimal | None = typer.Option(None, help="Hard cap on this run's forecast spend."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the batches (--no-wait: collect later)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the nightly flow: enqueue (optional) -> submit -> collect until done or the deadline."""
    settings = _ready()
    from flows.nightly import nightly
    from flows.params import NightlyParams

    params = NightlyParams(source=source, source_task_type=task_type, task_type=only or None, limit=limit,
                           deadline_minutes=deadline_minutes, poll_seconds=poll_seconds, budget_usd=budget_usd,
                           wait=wait)  # fmt: skip
    since = datetime.now(UTC)
    with migrated_engine(settings) as engine, watch(console, lambda: run_probe(engine, since), enabled=not as_json):
        result = run_flow(nightly, params, settings.public_values())
    if not as_json:
        print_verdict(result.ok, result.message)
        services = Services.from_settings(settings)
        try:
            run_id = int(result.data["run_id"])
            summary = summarize(services.engine, services.prices, run_id=run_id, registry=services.registry)
        finally:
            services.close()
        print_summary(summary, title=f"Run {result.data['run_id']}", data=result.data)
    _finish(result, as_json)


@handle_errors
def submit(
    only: list[str] = typer.Option([], "--only", help="Submit only these task types (repeatable)."),
    limit: int = typer.Option(100_000, help="At most this many tasks."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Submit queued tasks as batches (the submit flow) and return without waiting."""
    settings = _ready()
    from flows.params import SubmitParams
    from flows.submit import submit as submit_flow

    since = datetime.now(UTC)
    with migrated_engine(settings) as engine:
        total = min(limit, queued_tasks(engine, only or None))
        with watch(console, lambda: submit_probe(engine, since, total), enabled=not as_json):
            result = run_flow(submit_flow, SubmitParams(task_type=only or None, limit=limit), settings.public_values())
    if not as_json:
        print_verdict(result.ok, result.message)
    _finish(result, as_json)


@handle_errors
def collect(as_json: bool = JSON_OPTION) -> None:
    """Poll open batches once and ingest the ended ones (the collect flow)."""
    settings = _ready()
    from flows.collect import collect as collect_flow

    since = datetime.now(UTC)
    with migrated_engine(settings) as engine:
        total = len(batch_progress(engine, open_only=True))
        with watch(console, lambda: collect_probe(engine, since, total), enabled=not as_json):
            result: FlowResult = run_flow(collect_flow, None, settings.public_values())
    if not as_json:
        print_verdict(result.ok, result.message)
    _finish(result, as_json)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("submit")(submit)
    app.command("collect")(collect)
