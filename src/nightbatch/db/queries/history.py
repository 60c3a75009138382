"""A task type's past output on a model, from the ledger: what a forecast expects the next responses to write."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import Task, UsagePurpose, UsageRecord

__all__ = ["OutputHistory", "output_history"]


@dataclass(frozen=True)
class OutputHistory:
    """Mean output tokens per task response, and how many of them were thinking."""

    output_tokens: float
    thinking_tokens: float


def output_history(engine: Engine, task_type: str, model: str) -> OutputHistory | None:
    """Mean (output, thinking) tokens of the type's task responses on ``model``, or None without history."""
    query = (
        select(func.avg(UsageRecord.output_tokens), func.avg(UsageRecord.thinking_tokens))
        .join(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(
            col(Task.task_type) == task_type,
            col(UsageRecord.model) == model,
            col(UsageRecord.purpose) == UsagePurpose.TASK,
        )
    )
    with engine.connect() as conn:
        output, thinking = conn.execute(query).one()
    return None if output is None else OutputHistory(float(output), float(thinking or 0))
