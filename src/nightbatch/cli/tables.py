"""Tables that never truncate: a figure, id or model name is shown whole or the layout changes.

Rule: a table is drawn as columns when every cell fits the console's width (pipes and files included:
rich assumes 80 columns there unless ``COLUMNS`` says otherwise); otherwise it drops to a vertical layout,
one block per row with ``header: value`` lines. Cells are never cut with an ellipsis; a long text cell
in the columns layout folds onto the next line instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["duration_text", "fits", "print_table"]

_PADDING = 3  # rich's default: one space each side plus the vertical rule


def fits(header: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> bool:
    """Whether the columns layout shows every cell whole within ``width``."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    return sum(widths) + _PADDING * len(widths) + 1 <= width


def _columns(title: str | None, header: Sequence[str], rows: Sequence[Sequence[str]], text_cols: int) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i < text_cols else "right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _vertical(title: str | None, header: Sequence[str], rows: Sequence[Sequence[str]]) -> RenderableType:
    label_width = max(len(h) for h in header)
    blocks: list[RenderableType] = [Text(title, style="italic")] if title else []
    for n, row in enumerate(rows, start=1):
        block = Table.grid(padding=(0, 1))
        block.add_column(justify="left", no_wrap=True, width=label_width + 1)
        block.add_column(justify="left", overflow="fold")
        for name, value in zip(header, row, strict=True):
            block.add_row(f"{name}:", value)
        blocks += [Text(f"— {n} of {len(rows)}", style="dim"), block] if len(rows) > 1 else [block]
    return Group(*blocks)


def print_table(
    console: Console,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    text_cols: int = 1,
) -> None:
    """Print as columns if every cell fits ``console``'s width, else one ``header: value`` block per row."""
    if fits(header, rows, console.width):
        console.print(_columns(title, header, rows, text_cols))
    else:
        console.print(_vertical(title, header, rows))


def duration_text(seconds: float) -> str:
    """``45s``, ``12m 05s``, ``3h 12m``, ``2d 4h``: whole units, largest two, a minus sign when negative."""
    sign, rest = ("-" if seconds < 0 else ""), int(abs(seconds))
    days, rest = divmod(rest, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes:02d}m"
    if minutes:
        return f"{sign}{minutes}m {secs:02d}s"
    return f"{sign}{secs}s"
