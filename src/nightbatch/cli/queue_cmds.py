"""``nightbatch enqueue`` and ``nightbatch status``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from nightbatch.cli.app import console, handle_errors, load_settings
from nightbatch.cli.progress import watch
from nightbatch.cli.tables import duration_text, print_table
from nightbatch.db.migrate import upgrade
from nightbatch.db.progress import enqueue_probe
from nightbatch.db.run_tasks import BatchProgressRow, batch_progress
from nightbatch.db.status import batch_durations, claims, tasks_by_type_and_state
from nightbatch.deadline.durations import expected_finishes
from nightbatch.errors import InputError, ProviderError
from nightbatch.services import Services
from nightbatch.sources import enqueue_source

STATES = ("queued", "claimed", "submitted", "succeeded", "failed", "canceled")


def _lines_in(sources: list[str]) -> int | None:
    """Lines in local task files (the progress total); None when a source is not local."""
    total = 0
    for source in sources:
        path = Path(source)
        if source.startswith("s3://") or not path.exists():
            return None
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            if file.name.endswith((".jsonl", ".ndjson")):
                with file.open("rb") as handle:
                    total += sum(1 for line in handle if line.strip())
    return total


@handle_errors
def enqueue(
    sources: list[str] = typer.Argument(..., help="JSONL files, folders of them, or s3://bucket/prefix."),
    task_type: str | None = typer.Option(None, "--task-type", "-t", help="Task type for lines that name none."),
    replace: bool = typer.Option(
        False, "--replace", help="A key already queued for a different task: give the queued task the new one."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (for scripts), no progress."),
) -> None:
    """Enqueue tasks from JSONL. A bad line aborts its whole file (FILE:LINE is named); nothing of it is queued."""
    settings = load_settings()
    upgrade(settings.resolved_database_url)
    services = Services.from_settings(settings)
    since = datetime.now(UTC)
    results: list[dict[str, Any]] = []
    refused: list[str] = []
    try:
        total = _lines_in(sources)
        with watch(console, lambda: enqueue_probe(services.engine, since, total), enabled=not as_json):
            for source in sources:
                summary = enqueue_source(services, source, default_task_type=task_type, replace=replace)
                refused += summary.errors
                errors, summary.errors = summary.errors, []  # named once, in the error line below
                results.append({"source": source, "files": summary.files, "inserted": summary.inserted,
                                "already_queued": summary.duplicates, "conflicts": summary.conflicts,
                                "conflict_keys": summary.conflict_keys, "replaced": summary.replaced,
                                "refused": errors, "described": summary.describe()})  # fmt: skip
    finally:
        services.close()
    inserted = sum(r["inserted"] for r in results)
    duplicates = sum(r["already_queued"] for r in results)
    if as_json:
        for r in results:
            r.pop("described")
        console.print_json(json.dumps({"ok": not refused, "inserted": inserted, "already_queued": duplicates,
                                       "sources": results}))  # fmt: skip
    else:
        for r in results:
            console.print(f"{r['source']}: {r.pop('described')}", highlight=False)
        if len(results) > 1:
            console.print(f"total: {inserted:,} enqueued, {duplicates:,} already queued", highlight=False)
    if refused:
        # Each refused file went in not at all; the others are queued. Name every one, then fail.
        raise InputError("; ".join(refused))


def _eta(row: BatchProgressRow, durations: dict[str, Any], now: datetime) -> str:
    typical = durations.get(row.model) or durations.get("*")
    if typical is None:
        return "–"
    left = (row.created_at + typical - now).total_seconds()
    return "any time now" if left <= 0 else f"~{duration_text(left)}"


def _live(services: Services, rows: list[BatchProgressRow]) -> dict[int, dict[str, int | str]]:
    """What the API says now about each open batch (not recorded: `nightbatch collect` does that)."""
    live: dict[int, dict[str, int | str]] = {}
    for row in rows:
        if not row.provider_batch_id:
            continue
        try:
            info = services.client.retrieve_batch(row.provider_batch_id)
        except ProviderError as exc:
            live[row.batch_id] = {"error": str(exc)}
            continue
        c = info.counts
        live[row.batch_id] = {"status": info.processing_status, "processing": c.processing, "succeeded": c.succeeded,
                              "errored": c.errored, "canceled": c.canceled, "expired": c.expired}  # fmt: skip
    return live


@handle_errors
def status(
    live: bool = typer.Option(False, "--live", help="Ask the API for each open batch's counts now."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """Tasks per type and state, claims and their leases, open batches with an ETA from measured durations."""
    settings = load_settings()
    upgrade(settings.resolved_database_url)
    services = Services.from_settings(settings)
    now = datetime.now(UTC)
    try:
        by_type = tasks_by_type_and_state(services.engine)
        held = claims(services.engine)
        open_rows = batch_progress(services.engine, open_only=True)
        durations = batch_durations(services.engine)
        expected = expected_finishes(services.engine, now)
        live_counts = _live(services, open_rows) if live else {}
    finally:
        services.close()
    lease = settings.lease_seconds
    if as_json:
        data = {
            "tasks": by_type,
            "claims": [{"what": c.what, "worker": c.worker, "count": c.count, "oldest_claimed_at": c.oldest.isoformat(),
                        "age_seconds": int(c.age(now).total_seconds()),
                        "lease_left_seconds": int(c.lease_left(now, lease).total_seconds())} for c in held],
            "open_batches": [{"batch_id": r.batch_id, "provider_batch_id": r.provider_batch_id,
                              "task_type": r.task_type, "model": r.model, "status": r.status, "requests": r.requests,
                              "done": r.done, "created_at": r.created_at.isoformat(),
                              "age_seconds": int((now - r.created_at).total_seconds()), "eta": _eta(r, durations, now),
                              "live": live_counts.get(r.batch_id)} for r in open_rows],
            "median_batch_seconds": {m: int(d.total_seconds()) for m, d in durations.items()},
            "expected_finish": [e.describe() for e in expected],
        }  # fmt: skip
        console.print_json(json.dumps(data))
        return
    states = [s for s in STATES if any(s in counts for counts in by_type.values())]
    rows = [[t, *(f"{by_type[t].get(s, 0):,}" for s in states)] for t in sorted(by_type)]
    if rows:
        print_table(console, ["task type", *states], rows, title="Tasks by type and state")
    else:
        console.print("no tasks")
    if held:
        claim_rows = [
            [c.what, c.worker, f"{c.count:,}", duration_text(c.age(now).total_seconds()),
             "expired: reclaimable" if c.lease_left(now, lease).total_seconds() <= 0
             else duration_text(c.lease_left(now, lease).total_seconds())]
            for c in held
        ]  # fmt: skip
        print_table(console, ["claim", "worker", "count", "oldest age", "lease left"], claim_rows, title="Claims",
                    text_cols=2)  # fmt: skip
    if not open_rows:
        console.print("no open batches")
        return
    header = ["batch", "provider id", "task type", "model", "state", "requests", "done", "age", "ETA"]
    batch_rows = []
    for r in open_rows:
        state, done = r.status, f"{r.done:,}"
        counts = live_counts.get(r.batch_id)
        if counts and "error" not in counts:
            state = f"{counts['status']} (live)"
            done = f"{r.requests - int(counts['processing']):,}"
        elif counts:
            state = f"{r.status} (live: {counts['error']})"
        batch_rows.append([str(r.batch_id), r.provider_batch_id or "–", r.task_type, r.model, state,
                           f"{r.requests:,}", done, duration_text((now - r.created_at).total_seconds()),
                           _eta(r, durations, now)])  # fmt: skip
    print_table(console, header, batch_rows, title="Open batches", text_cols=5)
    for e in expected:
        console.print(f"expected finish: {e.describe()}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("enqueue")(enqueue)
    app.command("status")(status)
