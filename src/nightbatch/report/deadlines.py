"""The report's deadline section: what the real-time fallback cost, which tasks used it, how long batches took.

The fallback's cost is its own line, apart from the batch costs: it is what missing the batch window cost
(the same tasks billed at standard instead of batch prices). Durations are the measured ones the deadline
forecast uses (:mod:`nightbatch.deadline.durations`), per model and size, over every ended batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from nightbatch.db import Engine
from nightbatch.db.deadlines import FallbackRow, fallback_rows
from nightbatch.deadline.durations import DurationModel
from nightbatch.pricing import pusd_to_usd

__all__ = ["DeadlineSection", "deadline_lines", "deadline_section", "duration_text"]


@dataclass(frozen=True)
class DeadlineSection:
    """Fallback cost and tasks of the selection, and measured batch durations."""

    fallback: list[FallbackRow] = field(default_factory=list)
    durations: list[tuple[str, str, int, float, float]] = field(default_factory=list)
    """(model, size bucket, batches, p50 seconds, p95 seconds)."""

    @property
    def fallback_pusd(self) -> int:
        return sum(r.cost_pusd or 0 for r in self.fallback)

    @property
    def fallback_task_ids(self) -> list[int]:
        return sorted(r.task_id for r in self.fallback)

    def to_dict(self) -> dict[str, object]:
        return {
            "fallback_cost_usd": str(_usd(self.fallback_pusd)),
            "fallback_tasks": [
                {
                    "task_id": r.task_id,
                    "task_type": r.task_type,
                    "model": r.model,
                    "status": r.status,
                    "cost_usd": None if r.cost_pusd is None else str(_usd(r.cost_pusd)),
                }
                for r in self.fallback
            ],
            "batch_durations": [
                {"model": m, "size": b, "batches": n, "p50_seconds": p50, "p95_seconds": p95}
                for m, b, n, p50, p95 in self.durations
            ],
        }


def _usd(pusd: int) -> Decimal:
    return pusd_to_usd(pusd)


def deadline_section(engine: Engine, *, run_id: int | None) -> DeadlineSection:
    """The section for one run (``run_id``) or for everything."""
    return DeadlineSection(fallback_rows(engine, run_id=run_id), DurationModel.load(engine).groups())


def duration_text(seconds: float) -> str:
    """``5 s``, ``12 min``, ``3.2 h``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def deadline_lines(section: DeadlineSection) -> list[str]:
    """Plain lines for text and Markdown output."""
    lines = []
    if section.fallback:
        ids = ", ".join(str(i) for i in section.fallback_task_ids)
        lines.append(
            f"real-time fallback (missed the batch window): ${_usd(section.fallback_pusd):.4f} for "
            f"{len(section.fallback)} tasks ({ids})"
        )
    for model, bucket, n, p50, p95 in section.durations:
        lines.append(
            f"batches on {model}, {bucket} requests: {n} measured, took {duration_text(p50)} (p50), "
            f"{duration_text(p95)} (p95)"
        )
    return lines
