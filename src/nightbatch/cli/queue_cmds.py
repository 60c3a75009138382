"""``nightbatch enqueue`` and ``nightbatch status``."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.table import Table
from sqlalchemy import func, select
from sqlmodel import col

from nightbatch.cli.app import console, handle_errors, load_settings
from nightbatch.db.engine import make_engine
from nightbatch.db.migrate import upgrade
from nightbatch.db.models import Batch, BatchStatus, Task
from nightbatch.deadline.durations import describe_all, expected_finishes
from nightbatch.errors import InputError
from nightbatch.services import Services
from nightbatch.sources import enqueue_source


@handle_errors
def enqueue(
    sources: list[str] = typer.Argument(..., help="JSONL files, folders of them, or s3://bucket/prefix."),
    task_type: str | None = typer.Option(None, "--task-type", "-t", help="Task type for lines that name none."),
    replace: bool = typer.Option(
        False, "--replace", help="A key already queued for a different task: give the queued task the new one."
    ),
) -> None:
    """Enqueue tasks from JSONL. A bad line aborts its whole file (FILE:LINE is named); nothing of it is queued."""
    settings = load_settings()
    upgrade(settings.resolved_database_url)
    services = Services.from_settings(settings)
    try:
        refused: list[str] = []
        for source in sources:
            summary = enqueue_source(services, source, default_task_type=task_type, replace=replace)
            refused += summary.errors
            summary.errors = []
            console.print(f"{source}: {summary.describe()}")
        if refused:
            # Each refused file went in not at all; the others are queued. Name every one, then fail.
            raise InputError("; ".join(refused))
    finally:
        services.close()


@handle_errors
def status() -> None:
    """Queued / in-flight / ended task counts and the open batches."""
    settings = load_settings()
    engine = make_engine(settings.resolved_database_url)
    upgrade(settings.resolved_database_url)
    with engine.connect() as conn:
        by_status = conn.execute(select(col(Task.status), func.count()).group_by(col(Task.status))).all()
        columns = (
            col(Batch.id),
            col(Batch.provider_batch_id),
            col(Batch.model),
            col(Batch.status),
            col(Batch.request_count),
            col(Batch.processing_count),
            col(Batch.created_at),
        )
        unfinished = [BatchStatus.PENDING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELING, BatchStatus.ENDED]
        open_batches = conn.execute(
            select(*columns).where(col(Batch.status).in_(unfinished)).order_by(col(Batch.id))
        ).all()
        expected = describe_all(expected_finishes(engine, datetime.now(UTC)))
    engine.dispose()
    tasks = Table(title="Tasks")
    tasks.add_column("status")
    tasks.add_column("count", justify="right")
    for name, count in sorted(by_status, key=lambda r: str(r[0])):
        tasks.add_row(str(name), str(count))
    console.print(tasks)
    batches = Table(title="Open batches")
    for column in ("id", "provider id", "model", "status", "requests", "processing", "created"):
        batches.add_column(column)
    for row in open_batches:
        batches.add_row(*(str(v) if v is not None else "-" for v in row))
    console.print(batches if open_batches else "no open batches")
    for line in expected:
        console.print(f"expected finish: {line}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("enqueue")(enqueue)
    app.command("status")(status)
