"""``nightbatch demo`` (what ``make run`` runs): the whole pipeline on the example workload.

Embedded defaults: a fresh SQLite database and output folder under ``.nightbatch/demo/``, and, with no
``ANTHROPIC_API_KEY``, nightbatch's local emulator in place of the API — labelled SIMULATED everywhere.
With a key the same command talks to the real API, after showing a cost forecast and asking.

The demo's own settings (its home, config, the emulator's address) are overrides of the settings read
once here, handed to the nightly flow as its ``settings`` parameter (not written into ``os.environ``).
"""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack, closing
from decimal import Decimal
from pathlib import Path

import typer
from rich.panel import Panel

from nightbatch.cli.app import console, handle_errors, load_settings
from nightbatch.cli.estimate_cmds import print_forecast
from nightbatch.cli.flow_runs import prepare_prefect, run_flow
from nightbatch.cli.summary import print_summary, print_verdict
from nightbatch.config import environ
from nightbatch.db.migrate import upgrade
from nightbatch.errors import ConfigError
from nightbatch.forecast import forecast_queue
from nightbatch.report.summary import summarize
from nightbatch.services import Services
from nightbatch.sources import enqueue_source

# Simulated wrong answers per model tier, so the demo shows quality checks and escalation at work.
DEMO_ERROR_RATES = {1: 0.04, 2: 0.02, 3: 0.01}
DEMO_MAX_FAILED_SHARE = "0.02"
"""The outcome policy's failed-task threshold in a simulated demo (see docs/operations.md)."""


@handle_errors
def demo(
    examples: Path = typer.Option(Path("examples"), help="Folder with nightbatch.toml and tasks/*.jsonl."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Task-type config to run the example tasks with (default: <examples>/nightbatch.toml, the 5.5 "
        "lineup; examples/nightbatch-4x.toml has the seed article's 4.x routes).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before spending real money."),
    # 60: a simulated minute per real second, so a 1 h batch-cache entry outlives the real seconds between a
    # pilot batch's end and its fan-out (at 3600 it would expire in about one real second).
    time_scale: float = typer.Option(60.0, help="Emulator only: simulated seconds per real second."),
) -> None:
    """Run the example workload end to end and print cost, cache hit rate and savings."""
    config = config or examples / "nightbatch.toml"
    if not config.exists():
        raise ConfigError(f"{config} not found: run the demo from the repository root (or pass --examples / --config)")
    config = config.resolve()
    home = Path(".nightbatch/demo")
    shutil.rmtree(home, ignore_errors=True)  # a fresh database each time, so the figures are this run's
    settings = load_settings(home=home, task_config=config)
    prepare_prefect(settings)
    from flows.nightly import nightly
    from flows.params import NightlyParams

    with ExitStack() as stack:
        if settings.simulated:
            from nightbatch.emulator import EmulatorConfig, run_emulator

            emulator = stack.enter_context(
                run_emulator(EmulatorConfig(time_scale=time_scale, quality_error_rates=DEMO_ERROR_RATES))
            )
            simulated: dict[str, object] = {"anthropic_base_url": emulator.base_url}
            if "NIGHTBATCH_MAX_FAILED_SHARE" not in environ():
                # The emulator injects wrong answers on purpose (DEMO_ERROR_RATES); the outcome policy's
                # default (0.5%) would fail every demo night for the faults it was asked to simulate.
                simulated["max_failed_share"] = Decimal(DEMO_MAX_FAILED_SHARE)
            console.print(Panel.fit(
                f"[bold yellow]SIMULATED RUN[/]: no ANTHROPIC_API_KEY, so requests go to nightbatch's local emulator "
                f"at {emulator.base_url}.\nTokens, cache hits and costs are the emulator's accounting at real prices; "
                "outputs are canned, not real model answers.\n"
                f"Wrong answers are injected (1-4% per model tier), so a night fails here above "
                f"{float(DEMO_MAX_FAILED_SHARE):.0%} failed tasks (default 0.5%).",
            ), soft_wrap=False)  # fmt: skip  # wrap inside the panel: a cropped URL cannot be copied
            settings = settings.model_copy(update=simulated)
        else:
            console.print(Panel.fit("[bold red]LIVE RUN[/]: requests go to the real Anthropic API and are billed."),
                          soft_wrap=False)  # fmt: skip
        upgrade(settings.resolved_database_url)
        services = stack.enter_context(closing(Services.from_settings(settings)))
        started = time.monotonic()
        summary = enqueue_source(services, str(examples / "tasks"), default_task_type=None)
        console.print(f"[bold]1. queue[/]: {summary.describe()}")
        forecast = forecast_queue(services)
        print_forecast(forecast, title="2. forecast (before anything is sent)")
        if not settings.simulated and not yes and not typer.confirm("Submit to the real API?"):
            raise typer.Exit(1)
        console.print("[bold]3. nightly flow[/]: route -> build cached requests -> pack -> submit -> poll -> ingest")
        # A demo batch takes seconds: expecting 5 minutes leaves the 30-minute deadline room for a pilot first.
        params = NightlyParams(poll_seconds=2.0, deadline_minutes=30, expected_batch_minutes=5, wait=True)
        result = run_flow(nightly, params, settings.public_values())
        elapsed = time.monotonic() - started
        label = "SIMULATED run" if settings.simulated else "Run"
        print_verdict(result.ok, result.message)
        print_summary(
            summarize(services.engine, services.prices, run_id=int(result.data["run_id"]), registry=services.registry),
            title=f"{label} summary ({elapsed:.0f} s)",
            data=result.data,
        )
        console.print(f"outputs: {settings.resolved_output}   database: {settings.resolved_database_url}")
    raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
