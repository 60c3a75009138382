"""Routing: which model a task goes to.

A task's model is, in order: its per-task override, else (when it is being escalated) the next rung
of its type's escalation ladder after the model that last failed it, else its type's configured model.
Defaults live in the task-type config, never here.
"""

from __future__ import annotations

from nightbatch.catalog import model_info
from nightbatch.tasktypes import TaskType

__all__ = ["choose_model", "next_rung"]


def next_rung(task_type: TaskType, current: str) -> str | None:
    """The model one rung above ``current`` on the type's ladder, or None at the top (or with no ladder)."""
    ladder = list(task_type.escalation)
    if current not in ladder:
        return None
    index = ladder.index(current)
    return ladder[index + 1] if index + 1 < len(ladder) else None


def choose_model(task_type: TaskType, *, override: str | None = None, escalate_from: str | None = None) -> str:
    """The model for one task (see the module docstring). Unknown models raise a ConfigError."""
    if override:
        model_info(override)
        return override
    if escalate_from is not None:
        above = next_rung(task_type, escalate_from)
        if above is not None:
            return above
    return task_type.model
