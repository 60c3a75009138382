"""Prefect artifacts: the run summary, the cost table and the batch progress of a run.

Keys are namespaced by deployment (``nightbatch-<deployment>-...``, ``nightbatch-adhoc-...`` outside one),
so two deployments on one server never overwrite each other, and each key's history is one deployment's
runs. Per run: ``-run-summary`` (Markdown, outcome counts first), ``-cost`` (table), ``-batch-progress``
(table per batch: task type, role — pilot, fan-out, uncached, shadow, calibration —, model, counts, state)
and ``-progress`` (the share of requests done).
A run without an API key (against the local emulator) is labelled SIMULATED in every artifact.
"""

from __future__ import annotations

from typing import cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows import events
from nightbatch.db.run_tasks import BatchProgressRow, batch_progress
from nightbatch.errors import NightbatchError, UnknownModelError
from nightbatch.report import build_report, resolve_selection
from nightbatch.report.attention import attention_items
from nightbatch.report.quality import quality_markdown, quality_report
from nightbatch.report.run_summary import SIMULATED_NOTE, cost_display_rows, cost_table_description, summary_markdown
from nightbatch.run_facts import JudgedRun, RunLog
from nightbatch.services import Services


def key(suffix: str) -> str:
    return f"{events.namespace()}-{suffix}"


def describe(services: Services, description: str) -> str:
    """An artifact's description, marked SIMULATED when the run had no API key (the local emulator)."""
    return f"SIMULATED (local emulator): {description}" if services.settings.simulated else description


def progress_rows(rows: list[BatchProgressRow]) -> list[dict[str, str]]:
    """One row per batch, display headers, counts with thousands separators; short columns first."""
    return [
        {
            "batch": str(r.batch_id),
            "task type": r.task_type,
            "role": r.role,
            "model": r.model,
            "state": r.status,
            "done": f"{r.done:,} of {r.requests:,}",
            "succeeded": f"{r.succeeded:,}",
            "errored": f"{r.errored:,}",
            "expired": f"{r.expired:,}",
            "canceled": f"{r.canceled:,}",
            "provider id": r.provider_batch_id or "not sent",
        }
        for r in rows
    ]


def publish_progress_table(services: Services, run_id: int | None, *, description: str) -> None:
    """The batch-progress table: every batch of run ``run_id`` (or every open batch when None)."""
    rows = batch_progress(services.engine, run_id, open_only=run_id is None)
    if rows:
        create_table_artifact(
            progress_rows(rows), key=key("batch-progress"), description=describe(services, description)
        )


class RunProgress:
    """One progress artifact per run: the share of its requests the API has finished, updated per poll."""

    def __init__(self, services: Services, run_id: int) -> None:
        self._services, self._run_id = services, run_id
        self._id: UUID | None = None
        self._logged: tuple[int, int] | None = None

    def update(self) -> None:
        rows = batch_progress(self._services.engine, self._run_id)
        total = sum(r.requests for r in rows)
        done = sum(r.done for r in rows)
        percent = 100.0 * done / total if total else 0.0
        if self._id is None:
            description = describe(self._services, f"run {self._run_id}: requests finished by the API")
            created = create_progress_artifact(percent, key=key("progress"), description=description)
            self._id = cast(UUID, created)  # sync call: a UUID, not a coroutine
        else:
            update_progress_artifact(self._id, percent)
        if (done, total) != self._logged:  # the log shows progress as it moves, not once per poll
            self._logged = (done, total)
            batches = sum(1 for r in rows if r.done < r.requests)
            get_run_logger().info("progress: %s of %s requests finished by the API (%.0f%%), %d batch(es) still "
                                  "running", f"{done:,}", f"{total:,}", percent, batches)  # fmt: skip


def _outcome_markdown(judged: JudgedRun, *, simulated: bool) -> str:
    state = "Completed" if judged.outcome.ok else "Failed"
    facts = judged.facts
    title = f"# nightbatch run {judged.run_id}: {state}{' (SIMULATED)' if simulated else ''}"
    lines = [title, "", *([f"> {SIMULATED_NOTE}", ""] if simulated else [])]
    lines += [f"**{judged.outcome.message}**", ""]
    lines += ["| outcome | tasks |", "| --- | ---: |"]
    for status, count in sorted(facts.outcomes.items()):
        lines.append(f"| {status} | {count:,} |")
    for error, count in sorted(facts.failed_before_sending.items()):
        lines.append(f"| failed before sending ({error}) | {count:,} |")
    if facts.open_batches:
        lines.append(f"| batches still open | {facts.open_batches:,} |")
    return "\n".join(lines) + "\n"


def publish_run_artifacts(services: Services, judged: JudgedRun, log: RunLog) -> None:
    """The run summary (outcomes first, then cost, savings, cache, quality, needs attention) and cost table."""
    run_id = judged.run_id
    items = attention_items(
        services.engine, services.registry, run_id, notes=log.notes, failed_before_sending=log.failed_before_sending
    )
    attention = "\n".join(f"- {item}" for item in items) if items else "- nothing"
    head = _outcome_markdown(judged, simulated=services.settings.simulated)
    description = describe(services, f"run {run_id}: {'ok' if judged.outcome.ok else 'problems'}")
    try:
        selection = resolve_selection(services.engine, run_id=run_id)
        report = build_report(services.engine, services.prices, selection, registry=services.registry)
    except NightbatchError as exc:  # e.g. a run that billed nothing, or a model the price table lacks
        if isinstance(exc, UnknownModelError):
            events.model_unpriced(run_id, exc.model, str(exc))
        get_run_logger().info("no cost report for run %s: %s", run_id, exc)
        create_markdown_artifact(f"{head}\nNo cost report: {exc}\n\n## Needs attention\n{attention}\n",
                                 key=key("run-summary"), description=description)  # fmt: skip
        return
    if not report.empty:
        create_table_artifact(cost_display_rows(report), key=key("cost"),
                              description=describe(services, cost_table_description(report, run_id)))  # fmt: skip
    for cache in report.cache.by_type:
        if cache.flagged:
            events.cache_below_plan(run_id, cache)
    quality = quality_markdown(
        quality_report(services.engine, services.prices, report.selection, registry=services.registry)
    )
    body = summary_markdown(report)
    markdown = f"{head}\n## Needs attention\n{attention}\n\n{body}\n{quality}\n"
    create_markdown_artifact(markdown, key=key("run-summary"), description=description)
