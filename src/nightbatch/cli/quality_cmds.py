"""``nightbatch calibrate``: measure every candidate model on a sample and pick the cheapest that passes."""

from __future__ import annotations

import json
import time

import typer

from nightbatch.calibrate import apply_calibration, finish_calibration, start_calibration
from nightbatch.cli.app import console, handle_errors, load_settings
from nightbatch.cli.tables import print_table
from nightbatch.db.calibrations import calibration_verdict
from nightbatch.db.migrate import upgrade
from nightbatch.services import Services


@handle_errors
def calibrate(
    task_type: str = typer.Option(..., "--task-type", "-t", help="The task type to calibrate."),
    sample: int = typer.Option(100, help="How many tasks of that type to send to every candidate."),
    models: list[str] = typer.Option([], "--model", help="Candidates (repeatable); default: the type's ladder."),
    resume: int | None = typer.Option(None, help="Finish an earlier calibration by its id instead of starting one."),
    wait_minutes: float = typer.Option(60.0, help="How long to wait for the batches (0: return at once)."),
    apply: bool = typer.Option(False, "--apply", help="Route the type to the recommended model."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores and the recommendation as JSON."),
) -> None:
    """Send one sample to every candidate model as batches, score the outputs, recommend (and --apply) a route."""
    settings = load_settings()
    upgrade(settings.resolved_database_url)
    services = Services.from_settings(settings)
    try:
        calibration_id = resume or start_calibration(services, task_type, sample, models or None)
        if not as_json:
            console.print(f"calibration {calibration_id}: batches submitted")
        deadline = time.monotonic() + wait_minutes * 60
        scores = finish_calibration(services, calibration_id)
        while scores is None and time.monotonic() < deadline:
            time.sleep(min(30.0, max(1.0, deadline - time.monotonic())))
            scores = finish_calibration(services, calibration_id)
        if scores is None:
            if as_json:
                console.print_json(json.dumps({"calibration_id": calibration_id, "done": False}))
            else:
                console.print(f"still running; finish it later with "
                              f"`nightbatch calibrate -t {task_type} --resume {calibration_id}`")  # fmt: skip
            return
        recommended, bar, _applied = calibration_verdict(services.engine, calibration_id)
        routed = apply_calibration(services, calibration_id) if apply and recommended is not None else None
        if as_json:
            console.print_json(json.dumps({
                "calibration_id": calibration_id, "done": True, "bar": bar, "recommended": recommended,
                "applied": routed is not None,
                "scores": [{"model": s.model, "pass_rate": s.pass_rate, "agreement": s.agreement,
                            "cost_per_task_usd": str(s.cost_per_task_usd),
                            "cost_per_success_usd": None if s.cost_per_success_usd is None
                            else str(s.cost_per_success_usd)} for s in scores],
            }))  # fmt: skip
            return
        bar_text = "none set" if bar is None else f"{bar:.1%}"
        rows = []
        for s in scores:
            agreement = "n/a" if s.agreement is None else f"{s.agreement:.1%}"
            per_success = "n/a" if s.cost_per_success_usd is None else f"${s.cost_per_success_usd:,.6f}"
            mark = "recommended" if s.model == recommended else ("below the bar" if recommended is None else "")
            rows.append([s.model, f"{s.pass_rate:.1%}", agreement, f"${s.cost_per_task_usd:,.6f}", per_success, mark])
        title = f"Calibration {calibration_id}: {task_type} (bar: pass rate and agreement >= {bar_text})"
        header = ["model", "pass rate", "agreement", "cost / task", "cost / success", "verdict"]
        print_table(console, header, rows, title=title)
        if recommended is None:
            console.print(f"no candidate reached the bar of {bar_text}: nothing to recommend "
                          "(add candidates with --model or lower routing.threshold)", highlight=False)  # fmt: skip
        elif routed is not None:
            console.print(f"routed {task_type} to {routed}", highlight=False)
        else:
            console.print(f"recommended: {recommended}, the cheapest candidate at or above the bar of {bar_text}; "
                          f"route to it with `nightbatch calibrate -t {task_type} --resume {calibration_id} --apply`",
                          highlight=False)  # fmt: skip
    finally:
        services.close()


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
