"""Scoring a calibration from its recorded probes: pass rate, agreement and cost per candidate, and the pick."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nightbatch.db.calibrations import ProbeResult
from nightbatch.pricing import pusd_to_usd
from nightbatch.quality.checks import agrees

__all__ = ["ModelScore", "recommend", "score"]


@dataclass(frozen=True)
class ModelScore:
    """How one candidate did on the sample."""

    model: str
    results: int
    passed: int
    agreed: int | None
    cost_usd: str

    @property
    def pass_rate(self) -> float:
        return self.passed / self.results if self.results else 0.0

    @property
    def agreement(self) -> float | None:
        return None if self.agreed is None or not self.results else self.agreed / self.results

    @property
    def cost_per_task_usd(self) -> Decimal:
        return Decimal(self.cost_usd) / self.results if self.results else Decimal(0)

    @property
    def cost_per_success_usd(self) -> Decimal | None:
        return Decimal(self.cost_usd) / self.passed if self.passed else None


def score(
    models: list[str],
    sample_size: int,
    probes: Iterable[ProbeResult],
    costs_pusd: Mapping[str, int],
    *,
    reference_field: str | None,
    payloads: Mapping[int, dict[str, Any]],
) -> list[ModelScore]:
    """Each candidate's score, in ``models`` order (the last is the top candidate, the one agreed with
    when the type names no ``reference_field``). Only succeeded probes count as answers."""
    outputs: dict[str, dict[int, Any]] = {m: {} for m in models}
    passed: dict[str, int] = dict.fromkeys(models, 0)
    for probe in probes:
        if probe.model not in outputs or probe.result_type != "succeeded":
            continue
        outputs[probe.model][probe.task_id] = probe.output
        passed[probe.model] += bool(probe.check_passed)
    top = models[-1]
    scores = []
    for model in models:
        if reference_field:
            agreed = sum(agrees(out, payloads.get(tid, {}).get(reference_field)) for tid, out in outputs[model].items())
        else:
            agreed = sum(agrees(out, outputs[top].get(tid)) for tid, out in outputs[model].items())
        cost = str(pusd_to_usd(costs_pusd.get(model, 0)))
        scores.append(ModelScore(model, sample_size, passed[model], agreed, cost))
    return scores


def recommend(scores: list[ModelScore], threshold: float | None) -> str | None:
    """The first (cheapest) candidate whose pass rate, and agreement when measured, reach ``threshold``."""
    if threshold is None:
        return None
    return next(
        (s.model for s in scores if s.pass_rate >= threshold and (s.agreement is None or s.agreement >= threshold)),
        None,
    )
