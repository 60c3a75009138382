"""Routing: which model a task goes to.

A task's model is, in order: its per-task override; else its ``route_model`` (set when a failed quality
check escalated it to the next rung of its type's ladder); else the model chosen by the type's latest
applied calibration; else its type's configured model. Defaults live in the task-type config, never here.
"""

from __future__ import annotations

from nightbatch.catalog import canonical_model, model_info
from nightbatch.tasktypes import TaskType

__all__ = ["choose_model", "next_rung"]


def next_rung(task_type: TaskType, current: str) -> str | None:
    """The model one rung above ``current`` on the type's ladder, or None at the top (or with no ladder).

    Dated ids and their catalog entries are one rung (a result names the model it ran on, maybe dated).
    """
    ladder = [canonical_model(m) for m in task_type.escalation]
    current = canonical_model(current)
    if current not in ladder:
        return None
    index = ladder.index(current)
    ladder = list(task_type.escalation)
    return ladder[index + 1] if index + 1 < len(ladder) else None


def choose_model(
    task_type: TaskType, *, override: str | None = None, route: str | None = None, calibrated: str | None = None
) -> str:
    """The model for one task (see the module docstring). Unknown models raise a ConfigError."""
    for chosen in (override, route, calibrated):
        if chosen:
            model_info(chosen)
            return chosen
    return task_type.model
