"""``nightbatch calibrate``: measure every candidate model on a sample and pick the cheapest that passes."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from nightbatch.cli.app import console, handle_errors, load_settings
from nightbatch.db.migrate import upgrade
from nightbatch.quality.calibrate import apply_calibration, finish_calibration, start_calibration
from nightbatch.services import Services


@handle_errors
def calibrate(
    task_type: str = typer.Option(..., "--task-type", "-t", help="The task type to calibrate."),
    sample: int = typer.Option(100, help="How many tasks of that type to send to every candidate."),
    models: list[str] = typer.Option([], "--model", help="Candidates (repeatable); default: the type's ladder."),
    resume: int | None = typer.Option(None, help="Finish an earlier calibration by its id instead of starting one."),
    wait_minutes: float = typer.Option(60.0, help="How long to wait for the batches (0: return at once)."),
    apply: bool = typer.Option(False, "--apply", help="Route the type to the recommended model."),
) -> None:
    """Send one sample to every candidate model as batches, score the outputs, recommend (and --apply) a route."""
    settings = load_settings()
    upgrade(settings.resolved_database_url)
    services = Services.from_settings(settings)
    try:
        calibration_id = resume or start_calibration(services, task_type, sample, models or None)
        console.print(f"calibration {calibration_id}: batches submitted")
        deadline = time.monotonic() + wait_minutes * 60
        scores = finish_calibration(services, calibration_id)
        while scores is None and time.monotonic() < deadline:
            time.sleep(min(30.0, max(1.0, deadline - time.monotonic())))
            scores = finish_calibration(services, calibration_id)
        if scores is None:
            console.print(
                f"still running; finish it later with `nightbatch calibrate -t {task_type} --resume {calibration_id}`"
            )
            return
        table = Table(title=f"Calibration {calibration_id}: {task_type}")
        for column in ("model", "pass rate", "agreement", "cost / task", "cost / successful task"):
            table.add_column(column, justify="right" if column != "model" else "left")
        for s in scores:
            agreement = "n/a" if s.agreement is None else f"{s.agreement:.1%}"
            per_success = "n/a" if s.cost_per_success_usd is None else f"${s.cost_per_success_usd:.6f}"
            table.add_row(s.model, f"{s.pass_rate:.1%}", agreement, f"${s.cost_per_task_usd:.6f}", per_success)
        console.print(table)
        if apply:
            console.print(f"routed {task_type} to {apply_calibration(services, calibration_id)}")
    finally:
        services.close()


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
