"""Prefect artifacts: cost per task type x model, the run summary, and progress per open batch.

Stable keys, so the Prefect UI shows each one's history across runs.
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

from nightbatch.collect.poll import CollectReport
from nightbatch.errors import NightbatchError
from nightbatch.report import build_report, cost_table_rows, report_markdown, resolve_selection
from nightbatch.report.attention import attention_items
from nightbatch.report.quality import quality_markdown, quality_report
from nightbatch.services import Services

COST_KEY = "nightbatch-cost-by-type-model"
SUMMARY_KEY = "nightbatch-run-summary"


def batch_key(batch_id: int) -> str:
    return f"nightbatch-batch-{batch_id}"


def publish_run_artifacts(services: Services, run_id: int, notes: list[str]) -> None:
    """The cost table and the Markdown summary of run ``run_id``."""
    items = attention_items(services.engine, services.registry, run_id, notes=notes)
    attention = "\n".join(f"- {item}" for item in items) if items else "- nothing"
    try:
        selection = resolve_selection(services.engine, run_id=run_id)
        report = build_report(services.engine, services.prices, selection, registry=services.registry)
    except NightbatchError as exc:  # e.g. a run that billed nothing
        get_run_logger().info("no cost report for run %s: %s", run_id, exc)
        create_markdown_artifact(f"# nightbatch run {run_id}\n\nNothing billed.\n\n## Needs attention\n{attention}\n",
                                 key=SUMMARY_KEY, description=f"run {run_id}")  # fmt: skip
        return
    if not report.empty:
        create_table_artifact(cost_table_rows(report), key=COST_KEY, description=f"run {run_id}: cost per task")
    quality = quality_markdown(
        quality_report(services.engine, services.prices, report.selection, registry=services.registry)
    )
    markdown = f"{report_markdown(report)}\n{quality}\n## Needs attention\n{attention}\n"
    create_markdown_artifact(markdown, key=SUMMARY_KEY, description=f"run {run_id}: outcomes, hit rate, savings")


class BatchProgress:
    """One progress artifact per open batch, updated as polling sees its request counts move."""

    def __init__(self) -> None:
        self._ids: dict[int, UUID] = {}

    def update(self, report: CollectReport) -> None:
        for batch_id, counts in report.progress.items():
            percent = 100.0 * counts["done"] / counts["total"] if counts["total"] else 100.0
            if batch_id in self._ids:
                update_progress_artifact(self._ids[batch_id], percent)
            else:
                created = create_progress_artifact(
                    percent, key=batch_key(batch_id), description=f"batch {batch_id}: requests done"
                )
                self._ids[batch_id] = cast(UUID, created)  # sync call: a UUID, not a coroutine
