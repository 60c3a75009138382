"""Progress on a TTY: counts, rate and ETA of a long command, polled from the database in a thread.

Nothing is drawn when the output is not a terminal or ``--json`` was asked for: scripts get one final
result. The probe runs in a background thread so the command itself needs no progress hooks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from nightbatch.db.progress import Probe

__all__ = ["watch"]


class _Counts(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(f"{int(task.completed):,}/{total}")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("–/s" if speed is None else f"{speed:,.1f}/s")


@contextmanager
def watch(console: Console, probe: Callable[[], Probe], *, enabled: bool = True, every: float = 0.5) -> Iterator[None]:
    """Show ``probe``'s counts while the body runs (on a terminal, when ``enabled``)."""
    if not enabled or not console.is_terminal:
        yield
        return
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), _Counts(), _Rate(),
                        TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True)  # fmt: skip
    task = progress.add_task("starting", total=None)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every):
            try:
                done, total, phase = probe()
            except Exception:  # a locked or busy database: skip this tick, the next one may pass
                continue
            progress.update(task, completed=done, total=total, description=phase)

    thread = threading.Thread(target=poll, name="nightbatch-progress", daemon=True)
    with progress:
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
