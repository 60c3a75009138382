"""``nightbatch tasks`` (list and show tasks) and ``nightbatch cancel`` (batches, recorded)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer

from nightbatch.cancel import cancel_batches
from nightbatch.cli.app import console, handle_errors, load_settings, migrated_engine
from nightbatch.cli.tables import duration_text, print_table
from nightbatch.db.migrate import upgrade
from nightbatch.db.run_tasks import list_tasks, task_detail
from nightbatch.errors import InputError, ProviderError
from nightbatch.pricing import pusd_to_usd
from nightbatch.report.render import usd_text
from nightbatch.services import Services

tasks_app = typer.Typer(help="List tasks by type, state, error or run; show one task in full.")


def _json(value: Any) -> str:
    return json.dumps(value, default=str, indent=2)


@tasks_app.callback(invoke_without_command=True)
@handle_errors
def tasks_list(
    ctx: typer.Context,
    task_type: str | None = typer.Option(None, "--task-type", "-t", help="Only this task type."),
    state: str | None = typer.Option(None, "--state", "-s", help="queued, claimed, submitted, succeeded, failed..."),
    error: str | None = typer.Option(None, "--error", "-e", help="Error type starting with this (e.g. invalid)."),
    run: int | None = typer.Option(None, "--run", help="Only tasks last sent in this run's batches."),
    limit: int = typer.Option(50, min=1, help="At most this many (newest change first)."),
    as_json: bool = typer.Option(False, "--json", help="Print the tasks as JSON."),
) -> None:
    """List tasks, newest change first."""
    if ctx.invoked_subcommand is not None:
        return
    with migrated_engine() as engine:
        rows = list_tasks(engine, task_type=task_type, status=state, error=error, run_id=run, limit=limit)
    if as_json:
        console.print_json(_json([r.__dict__ for r in rows]))
        return
    if not rows:
        console.print("no tasks match")
        return
    now = datetime.now(UTC)
    table = [
        [str(r.id), r.task_type, r.status, r.model or "–", str(r.attempts), r.error_type or "–",
         str(r.batch_id or "–"), duration_text((now - r.updated_at).total_seconds()) + " ago"]
        for r in rows
    ]  # fmt: skip
    print_table(console, ["id", "task type", "state", "model", "attempts", "error", "batch", "changed"], table,
                title=f"Tasks (newest {len(rows):,})", text_cols=6)  # fmt: skip


@tasks_app.command("show")
@handle_errors
def tasks_show(
    task_id: int = typer.Argument(..., help="The task's id (from `nightbatch tasks`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the task as JSON."),
) -> None:
    """One task: its fields, every attempt and what each response cost, and where its output is."""
    with migrated_engine() as engine:
        detail = task_detail(engine, task_id)
    if detail is None:
        raise InputError(f"task {task_id} not found")
    if as_json:
        console.print_json(_json({"task": detail.task, "attempts": detail.attempts, "costs": detail.costs}))
        return
    t = detail.task
    output = t.get("output_uri") or ("inline in the database" if t.get("output_inline") is not None else "–")
    if t.get("output_uri") and t.get("output_line") is not None:
        output = f"{t['output_uri']} (line {t['output_line']:,})"
    fields = [
        ["task type", str(t["task_type"])], ["state", str(t["status"])], ["model", str(t.get("model") or "–")],
        ["attempts", str(t["attempts"])], ["batch", str(t.get("batch_id") or "–")],
        ["custom id", str(t.get("custom_id") or "–")], ["idempotency key", str(t["idempotency_key"])],
        ["source", str(t.get("source") or "–")],
        ["error", f"{t.get('error_type') or '–'} {t.get('error_message') or ''}".strip()],
        ["output", output], ["created", str(t["created_at"])], ["updated", str(t["updated_at"])],
    ]  # fmt: skip
    print_table(console, ["field", "value"], fields, title=f"Task {task_id}")
    if detail.attempts:
        rows = [[str(a["attempt"]), str(a["purpose"]), str(a["model"]), str(a["batch_id"] or "–"),
                 str(a["result_type"]), {True: "pass", False: "fail", None: "–"}[a["check_passed"]],
                 str(a["check_reason"] or "")]
                for a in detail.attempts]  # fmt: skip
        print_table(console, ["attempt", "purpose", "model", "batch", "result", "check", "reason"], rows,
                    title="Attempts", text_cols=7)  # fmt: skip
    if detail.costs:
        rows = [[str(c["model"]), str(c["purpose"]), str(c["service_tier"]), f"{c['input_tokens']:,}",
                 f"{c['output_tokens']:,}", f"{c['cache_read_tokens']:,}",
                 f"{c['cache_write_5m_tokens'] + c['cache_write_1h_tokens']:,}",
                 "UNPRICED" if c["cost_pusd"] is None else usd_text(c["cost_pusd"])]
                for c in detail.costs]  # fmt: skip
        total = sum(int(c["cost_pusd"] or 0) for c in detail.costs)  # unpriced rows are shown, not summed
        print_table(console, ["model", "purpose", "tier", "input", "output", "cache read", "cache write", "cost"],
                    rows, title=f"Costs (total {usd_text(total)}, exactly ${pusd_to_usd(total)})",
                    text_cols=3)  # fmt: skip


@handle_errors
def cancel(
    batch: int | None = typer.Argument(None, help="The batch's id (from `nightbatch status`)."),
    run: int | None = typer.Option(None, "--run", help="Cancel every open batch of this run instead."),
    reason: str = typer.Option("", "--reason", help="Why (recorded on each batch)."),
    requeue: bool = typer.Option(False, "--requeue", help="Give the canceled requests back to the queue."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Cancel a batch, or a run's open batches; recorded on each batch. Answered requests are still ingested."""
    settings = load_settings()
    upgrade(settings.resolved_database_url)
    services = Services.from_settings(settings)
    try:
        report = cancel_batches(services, batch_id=batch, run_id=run, reason=reason, requeue=requeue)
    finally:
        services.close()
    if as_json:
        console.print_json(_json({"ok": not report.errors, "canceled": report.canceled, "errors": report.errors}))
    else:
        then = "go back to the queue" if requeue else "end canceled"
        console.print(f"asked the API to cancel {len(report.canceled):,} batch(es) "
                      f"({', '.join(map(str, report.canceled)) or 'none'}); unanswered requests {then} "
                      "when `nightbatch collect` ingests them", highlight=False)  # fmt: skip
    if report.errors:
        raise ProviderError("; ".join(report.errors))


def register(app: typer.Typer) -> None:
    app.add_typer(tasks_app, name="tasks")
    app.command("cancel")(cancel)
