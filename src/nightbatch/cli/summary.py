"""Printing a :class:`~nightbatch.report.summary.RunSummary` as a rich table."""

from __future__ import annotations

from rich.table import Table

from nightbatch.cli.app import console
from nightbatch.pricing import pusd_to_usd
from nightbatch.report.summary import RunSummary


def _usd(value: object) -> str:
    return f"${float(str(value)):,.4f}"


def print_summary(summary: RunSummary, *, title: str) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for status, count in sorted(summary.outcomes.items()):
        table.add_row(f"tasks {status}", f"{count:,}")
    for model, count in sorted(summary.tasks_by_model.items()):
        table.add_row(f"billed responses on {model}", f"{count:,}")
    table.add_row("prompt tokens", f"{summary.prompt_tokens:,}")
    table.add_row("output tokens", f"{summary.output_tokens:,}")
    table.add_row("  of which thinking (billed as output)", f"{summary.thinking_tokens:,}")
    headline = summary.prefix_hit_rate
    table.add_row("prefix hit rate (read / all prefix tokens)", "n/a" if headline is None else f"{headline:.1%}")
    rate = summary.cache_hit_rate
    table.add_row("  cache read share (read / (read + write))", "n/a" if rate is None else f"{rate:.1%}")
    for f in summary.prefix:
        table.add_row(
            f"  {f.task_type} on {f.model}: prefix tokens",
            f"{f.sent:,} sent: {f.read:,} read, {f.written:,} written, {f.below_minimum:,} below minimum, "
            f"{f.not_marked:,} not marked",
        )
    table.add_row("cost", _usd(summary.cost_usd))
    for model, count in sorted(summary.unpriced.items()):  # never shown as $0: loud, and out of the totals
        table.add_row(f"[bold red]UNPRICED: {count:,} response(s) on {model}[/]", "[bold red]no price row[/]")
    table.add_row(f"naive cost (all real-time {summary.savings.baseline_model}, no cache)", _usd(summary.baseline_usd))
    saving = summary.saving_fraction
    table.add_row("saving", "n/a" if saving is None else f"{saving:.1%}")
    shares = summary.savings.shares()
    for lever, pusd in summary.savings.levers().items():
        share = shares.get(lever)
        table.add_row(
            f"  of which {lever}", f"{_usd(pusd_to_usd(pusd))}" + ("" if share is None else f" ({share:.0%})")
        )
    if summary.fallback_tasks:
        table.add_row("real-time fallback (missed the batch window)", _usd(pusd_to_usd(summary.fallback_pusd)))
        table.add_row("  tasks that fell back", ", ".join(str(t) for t in summary.fallback_tasks))
    for line in summary.in_flight:
        table.add_row("in flight", line)
    console.print(table)
    for line in summary.advice:
        console.print(f"[bold]advice:[/] {line}", highlight=False)
