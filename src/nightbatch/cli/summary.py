"""The one human summary a pipeline command ends with: the verdict first, then the night's figures.

Money is shown rounded for reading (exact values are in ``--json``); figures have thousands separators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console

from nightbatch.cli.app import console as default_console
from nightbatch.cli.tables import print_table
from nightbatch.report.render import percent_text, usd_text
from nightbatch.report.summary import RunSummary

__all__ = ["print_summary", "print_verdict", "summary_rows"]


def print_verdict(ok: bool, message: str, *, console: Console = default_console) -> None:
    """``Completed: ...`` in green or ``Failed: ...`` in red (the same words as the Prefect state)."""
    word = "[bold green]Completed[/]" if ok else "[bold red]Failed[/]"
    console.print(f"{word}: {message}", highlight=False)


def outcome_rows(data: Mapping[str, Any]) -> list[list[str]]:
    """Outcome counts first: tasks by status, failures before sending by error type, open batches."""
    rows = [[f"tasks {status}", f"{int(n):,}"] for status, n in sorted((data.get("outcomes") or {}).items())]
    rows += [[f"failed before sending ({e})", f"{int(n):,}"]
             for e, n in sorted((data.get("failed_before_sending") or {}).items())]  # fmt: skip
    if data.get("open_batches"):
        rows.append(["batches still open", f"{int(data['open_batches']):,}"])
    return rows


def summary_rows(summary: RunSummary) -> list[list[str]]:
    """Cost, cache and savings figures of a run, each a [label, value] row."""
    rows = [[f"billed responses on {model}", f"{count:,}"] for model, count in sorted(summary.tasks_by_model.items())]
    rows += [
        ["prompt tokens", f"{summary.prompt_tokens:,}"],
        ["output tokens", f"{summary.output_tokens:,}"],
        ["  of which thinking (billed as output)", f"{summary.thinking_tokens:,}"],
        ["prefix hit rate (read / all prefix tokens)", percent_text(summary.prefix_hit_rate)],
        ["  cache read share (read / (read + write))", percent_text(summary.cache_hit_rate)],
    ]
    rows += [
        [
            f"  {f.task_type} on {f.model}: prefix tokens",
            f"{f.sent:,} sent: {f.read:,} read, {f.written:,} written, {f.below_minimum:,} below minimum, "
            f"{f.not_marked:,} not marked",
        ]
        for f in summary.prefix
    ]
    rows += [
        ["cost", usd_text(summary.cost_pusd)],
    ]
    if summary.fallback_tasks:  # what missing the batch window cost (nightbatch.deadline)
        rows.append(["  of which real-time fallback (missed the batch window)", usd_text(summary.fallback_pusd)])
        rows.append(["  tasks that fell back", ", ".join(str(t) for t in summary.fallback_tasks)])
    rows += [["in flight", line] for line in summary.in_flight]
    # Never shown as $0: loud, and out of the totals.
    rows += [[f"UNPRICED: {count:,} response(s) on {model}", "no price row"]
             for model, count in sorted(summary.unpriced.items())]  # fmt: skip
    rows += [
        [f"naive cost (real-time {summary.savings.baseline_model}, no cache)", usd_text(summary.baseline_pusd)],
        ["saving", percent_text(summary.saving_fraction)],
    ]
    shares = summary.savings.shares()
    for lever, pusd in summary.savings.levers().items():
        share = shares.get(lever)
        rows.append([f"  of which {lever}", usd_text(pusd) + ("" if share is None else f" ({share:.0%})")])
    return rows


def print_summary(
    summary: RunSummary,
    *,
    title: str,
    data: Mapping[str, Any] | None = None,
    console: Console = default_console,
) -> None:
    """The run's figures as one two-column table, outcome counts (from the flow's ``data``) first."""
    rows = outcome_rows(data) if data is not None else [
        [f"tasks {status}", f"{count:,}"] for status, count in sorted(summary.outcomes.items())
    ]  # fmt: skip
    print_table(console, ["what", "value"], [*rows, *summary_rows(summary)], title=title)
    for line in summary.advice:
        console.print(f"[bold]advice:[/] {line}", highlight=False)
