"""Savings, honestly: the same usage re-priced without each lever, and each lever's share of the saving.

Four cost levels, each an exact integer of picodollars, every token re-priced with the price table in
effect on the day it was billed:

(a) **naive**: every task response real-time (standard tier) on the top model of the config's ladder
    (:func:`baseline_model_for`: the highest-tier model any task type routes or escalates to, named in
    every report) with no caching: all its prompt tokens (uncached input + cache writes + cache reads) at
    the top model's input price, its output at the top model's output price;
(b) **routed**: the same, on the models actually used;
(c) **routed + batched**: the same, at the tier each response was actually billed at (batch for batch
    results), still without caching;
(d) **actual**: what the ledger recorded (``usage_record.cost_pusd``), everything included.

The levers are the steps between them, in that order: **routing** = a − b, **batching** = b − c,
**caching** = c − d. They telescope, so routing + batching + caching = naive − actual exactly. A lever's
value depends on the order (batching halves what routing left), and a lever can be negative (a cache
written and never read costs more than no cache).

Responses that are not a task's own are charged to the lever that caused them (:data:`OVERHEAD_LEVER`),
at their recorded cost, by entering every level after that lever's step: **priming** requests exist
only because of caching (in (d) only: caching lever); **orphan** results (a batch billed after its tasks
were moved on, see ``submit.submitter``) come with batching (in (c) and (d): batching lever);
**calibration** and **shadow** requests exist to choose models (in (b), (c) and (d): routing lever).
(a) has none of them.

Every level keeps what does not depend on the lever: the ``inference_geo`` the response ran in (1.1x for
``us``) and which side of a long-prompt band each response's prompt was on. **Unpriced** responses (no
price row for their model: ``cost_pusd`` NULL) are left out of every level, so the levers still sum
exactly; :attr:`Savings.unpriced` counts them per model, and every report says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from nightbatch.catalog import canonical_model, load_catalog
from nightbatch.db.models import UsagePurpose
from nightbatch.pricing import PriceTable, ServiceTier, Usage, price_usage
from nightbatch.report.query import LedgerGroup
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["BASELINE_MODEL", "LEVERS", "OVERHEAD_LEVER", "Savings", "baseline_model_for", "savings"]

BASELINE_MODEL = "claude-opus-4-8"
"""The naive baseline's model when there is neither a config nor a ledger to take it from."""


def baseline_model_for(registry: TaskTypeRegistry | None, used: Iterable[str] = ()) -> str:
    """The top model of the config's ladder: the highest-tier model any task type routes or escalates to.

    Ties on tier go to the newer generation, then to the one named last. Without task types, the
    highest-tier model of ``used`` (e.g. the models in the ledger); without either, :data:`BASELINE_MODEL`.
    """
    catalog = load_catalog()
    candidates = [m for t in registry for m in (t.model, *t.escalation)] if registry is not None else []
    candidates = [canonical_model(m) for m in (candidates or list(used))]
    known = [m for m in candidates if m in catalog]
    if not known:
        return BASELINE_MODEL
    ranked: list[tuple[int, str]] = sorted(
        enumerate(known), key=lambda im: (catalog[im[1]].tier, catalog[im[1]].generation, im[0])
    )
    return ranked[-1][1]


LEVERS = ("routing", "batching", "caching")

OVERHEAD_LEVER = {
    UsagePurpose.PRIMING: "caching",
    UsagePurpose.ORPHAN: "batching",
    UsagePurpose.CALIBRATION: "routing",
    UsagePurpose.SHADOW: "routing",
}
"""The lever each non-task purpose is a cost of; a purpose not listed is charged to routing."""


@dataclass(frozen=True)
class Savings:
    """The four cost levels (picodollars) and the three levers between them."""

    naive_pusd: int = 0
    routed_pusd: int = 0
    batched_pusd: int = 0
    actual_pusd: int = 0
    baseline_model: str = BASELINE_MODEL
    naive_by_group: dict[tuple[str, str], int] = field(default_factory=dict, compare=False)
    """The naive cost of each (task type, model)'s task responses."""
    unpriced: dict[str, int] = field(default_factory=dict, compare=False)
    """Responses left out of every level because their model had no price row, by model."""

    def unpriced_warning(self) -> str | None:
        """The loud line every report prints when some billed responses could not be priced."""
        if not self.unpriced:
            return None
        parts = ", ".join(f"{n:,} on {model}" for model, n in sorted(self.unpriced.items()))
        return (
            f"UNPRICED: {sum(self.unpriced.values()):,} billed response(s) have no price ({parts}): their cost is "
            "NOT in these totals. Add a price row for the model and re-price them."
        )

    @property
    def routing_pusd(self) -> int:
        return self.naive_pusd - self.routed_pusd

    @property
    def batching_pusd(self) -> int:
        return self.routed_pusd - self.batched_pusd

    @property
    def caching_pusd(self) -> int:
        return self.batched_pusd - self.actual_pusd

    @property
    def saving_pusd(self) -> int:
        """naive − actual, which the three levers sum to exactly."""
        return self.naive_pusd - self.actual_pusd

    @property
    def saving_fraction(self) -> float | None:
        """The saving as a fraction of the naive cost."""
        return self.saving_pusd / self.naive_pusd if self.naive_pusd else None

    def levers(self) -> dict[str, int]:
        """Each lever's saving in picodollars, in the order they are applied."""
        return {"routing": self.routing_pusd, "batching": self.batching_pusd, "caching": self.caching_pusd}

    def shares(self) -> dict[str, float | None]:
        """Each lever's share of the saving (they sum to 1); None when there is no saving to share."""
        total = self.saving_pusd
        return {name: (value / total if total > 0 else None) for name, value in self.levers().items()}


def _tier(value: str) -> ServiceTier:
    if value not in ("batch", "standard"):
        raise ValueError(f"usage billed at unknown service tier {value!r}; expected batch or standard")
    return cast(ServiceTier, value)


def _repriced(prices: PriceTable, model: str, usage: Usage, tier: ServiceTier, g: LedgerGroup) -> int:
    """``usage`` (a sum of g's responses) on ``model``, with g's geo and each response's band side."""
    above = prices.price(model, g.day).long_prompt_above
    # The band key is the largest threshold every response of g exceeded: on the band side iff it reaches this one.
    long_prompt = above is not None and g.long_prompt > 0 and g.long_prompt >= above
    return price_usage(
        prices, model, usage, tier, g.day, inference_geo=g.inference_geo, long_prompt=long_prompt
    ).total_pusd


def savings(groups: Iterable[LedgerGroup], prices: PriceTable, *, baseline_model: str = BASELINE_MODEL) -> Savings:
    """The cost levels of the selection's ledger groups (module docstring).

    ``baseline_model``: the naive baseline's model; callers pass :func:`baseline_model_for` of the config.
    Raises :class:`~nightbatch.errors.UnknownModelError` if the table cannot price the baseline model on a
    day the ledger has usage for.
    """
    naive = routed = batched = actual = 0
    by_group: dict[tuple[str, str], int] = {}
    unpriced: dict[str, int] = {}
    for g in groups:
        if g.unpriced:  # nothing to compare with: left out of every level (and named in the report)
            unpriced[g.model] = unpriced.get(g.model, 0) + g.unpriced
            continue
        actual += g.cost_pusd
        if g.purpose != UsagePurpose.TASK:
            lever = OVERHEAD_LEVER.get(UsagePurpose(g.purpose), "routing")
            routed += g.cost_pusd if lever == "routing" else 0
            batched += g.cost_pusd if lever in ("routing", "batching") else 0
            continue
        uncached = Usage(input_tokens=g.usage.prompt_tokens, output_tokens=g.usage.output_tokens)
        top = _repriced(prices, baseline_model, uncached, "standard", g)
        naive += top
        routed += _repriced(prices, g.model, uncached, "standard", g)
        batched += _repriced(prices, g.model, uncached, _tier(g.service_tier), g)
        key = (g.task_type or "(task)", g.model)
        by_group[key] = by_group.get(key, 0) + top
    return Savings(
        naive_pusd=naive,
        routed_pusd=routed,
        batched_pusd=batched,
        actual_pusd=actual,
        baseline_model=baseline_model,
        naive_by_group=by_group,
        unpriced=unpriced,
    )
