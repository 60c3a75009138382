"""``nightbatch requeue``: put failed (or canceled) tasks back in the queue, e.g. after fixing a template."""

from __future__ import annotations

import typer

from nightbatch.cli.app import console, handle_errors, migrated_engine
from nightbatch.db.requeue import requeue_tasks


@handle_errors
def requeue(
    task_types: list[str] = typer.Option([], "--task-type", "-t", help="Only tasks of this type (repeatable)."),
    states: list[str] = typer.Option(["failed"], "--state", help="failed (default) and/or canceled (repeatable)."),
    error_types: list[str] = typer.Option(
        [], "--error-type", "-e", help="Only tasks that failed with this error type, e.g. invalid_task (repeatable)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be re-queued."),
) -> None:
    """Re-queue failed or canceled tasks with a fresh attempt budget. Idempotent: a second run finds nothing."""
    with migrated_engine() as engine:
        result = requeue_tasks(engine, task_types=task_types, states=states, error_types=error_types, dry_run=dry_run)
    per_type = ", ".join(f"{t}: {n}" for t, n in result.by_type.items())
    detail = f" ({per_type})" if per_type else ""
    if dry_run:
        console.print(f"would re-queue {result.matched} task(s){detail}", highlight=False)
    else:
        console.print(f"re-queued {result.requeued} task(s){detail}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("requeue")(requeue)
