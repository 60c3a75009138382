"""Shadow drift per (task type, model): how far the routed model's answers agree with the next rung up.

Pure: the caller reads the attempts (:func:`nightbatch.db.queries.quality.shadow_attempts`) and passes each
type's bar (``routing.threshold`` of its task type) in as data. Pass rates are counted by the database
(:func:`nightbatch.db.queries.quality.pass_rates`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from nightbatch.quality.checks import agrees

__all__ = ["ShadowDrift", "ShadowedAttempt", "shadow_drift"]


class ShadowedAttempt(Protocol):
    """One succeeded attempt of a task, on its routed model or (``shadow``) on its shadow model."""

    @property
    def task_id(self) -> int: ...
    @property
    def task_type(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def shadow(self) -> bool: ...
    @property
    def check_passed(self) -> bool | None: ...
    @property
    def output(self) -> object: ...


@dataclass(frozen=True)
class ShadowDrift:
    """How the routed model compares with its shadow (the next rung up) on the same tasks."""

    task_type: str
    routed_model: str
    shadow_model: str
    pairs: int
    agreement: float
    routed_pass_rate: float
    threshold: float | None

    @property
    def drifted(self) -> bool:
        return self.threshold is not None and min(self.agreement, self.routed_pass_rate) < self.threshold


def shadow_drift(attempts: Iterable[ShadowedAttempt], thresholds: Mapping[str, float | None]) -> list[ShadowDrift]:
    """Agreement between routed and shadow outputs per type; flagged when below the type's threshold.

    ``thresholds``: each task type's bar; a type not in it (no longer configured) is never flagged.
    """
    routed: dict[int, ShadowedAttempt] = {}
    shadows: dict[int, ShadowedAttempt] = {}
    for attempt in attempts:
        (shadows if attempt.shadow else routed)[attempt.task_id] = attempt
    groups: dict[tuple[str, str, str], list[tuple[bool, bool]]] = {}
    for task_id, shadow in shadows.items():
        if task_id not in routed:
            continue
        task = routed[task_id]
        groups.setdefault((task.task_type, task.model, shadow.model), []).append(
            (agrees(task.output, shadow.output), bool(task.check_passed))
        )
    drifts = []
    for (task_type, model, shadow_model), pairs in sorted(groups.items()):
        drifts.append(
            ShadowDrift(
                task_type=task_type,
                routed_model=model,
                shadow_model=shadow_model,
                pairs=len(pairs),
                agreement=sum(a for a, _ in pairs) / len(pairs),
                routed_pass_rate=sum(p for _, p in pairs) / len(pairs),
                threshold=thresholds.get(task_type),
            )
        )
    return drifts
