"""Honest cache figures: of every prefix token sent, how many were read, written, never cacheable, or unmarked.

A read ÷ (read + write) ratio hides the prefixes that were never cached at all. So, per task type, every
prefix token of every billed response is put in exactly one bucket:

- **read**: served from the cache (``cache_read_input_tokens``);
- **written**: sent with a breakpoint and written (``cache_creation_input_tokens``): a pilot, or a miss;
- **below minimum**: the prefix is shorter than the model's minimum cacheable length: never cacheable;
- **not marked**: cacheable, but sent without a breakpoint (the planner found caching would not pay, a
  deadline left no room for a pilot, or caching is off).

The **prefix hit rate** (the headline figure) is read ÷ all prefix tokens. Read ÷ (read + write), the
share of *cached* prefix tokens that were read, stays as a second, labelled figure. Prefix sizes of
unmarked batches come from the planner's count recorded on the batch (``cache_decision.prefix_tokens``);
marked ones from the API's own usage.

A fan-out batch whose measured read share fell more than :data:`BELOW_PLAN_POINTS` points under the rate
its plan used is an **attention item** naming the batch, its group and both figures. A prefix below its
model's minimum gets **padding advice**: what padding it to the minimum would save per run, at the
planner's prices, and which models of the same family have a lower minimum.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from nightbatch.build.cache_ttl import plan_group
from nightbatch.catalog import load_catalog, model_info
from nightbatch.errors import ConfigError
from nightbatch.pricing import BATCH_DISCOUNT, PriceTable
from nightbatch.report.query import BatchCache, BatchPlan

__all__ = ["BELOW_PLAN_POINTS", "PaddingAdvice", "PrefixFigures", "below_plan", "padding_advice", "prefix_figures"]

BELOW_PLAN_POINTS = 20.0


@dataclass
class PrefixFigures:
    """Prefix tokens of one task type's billed responses, by what became of them."""

    task_type: str
    model: str
    responses: int = 0
    prefix_tokens: int = 0  # one response's prefix (the largest seen), as the planner counted it
    cached_prefix_tokens: int = 0  # one response's prefix as the API counted it (read + written), when marked
    read: int = 0
    written: int = 0
    below_minimum: int = 0
    not_marked: int = 0

    @property
    def sent(self) -> int:
        return self.read + self.written + self.below_minimum + self.not_marked

    @property
    def hit_rate(self) -> float | None:
        """read ÷ all prefix tokens sent (the headline figure)."""
        return self.read / self.sent if self.sent else None

    @property
    def read_share(self) -> float | None:
        """read ÷ (read + write): the share of cached prefix tokens that were read."""
        cached = self.read + self.written
        return self.read / cached if cached else None

    def as_dict(self) -> dict[str, object]:
        return {
            "task_type": self.task_type, "model": self.model, "responses": self.responses,
            "prefix_tokens": self.prefix_tokens, "sent": self.sent, "read": self.read, "written": self.written,
            "below_minimum": self.below_minimum, "not_marked": self.not_marked, "hit_rate": self.hit_rate,
            "read_share_of_cached": self.read_share,
        }  # fmt: skip


def _minimum(model: str) -> int:
    try:
        return model_info(model).min_cacheable_tokens
    except (ConfigError, KeyError):
        return 0


def prefix_figures(batches: Iterable[BatchCache], plans: dict[int, BatchPlan]) -> list[PrefixFigures]:
    """Per (task type, model), summed over ``batches`` (task and shadow responses alike)."""
    found: dict[tuple[str, str], PrefixFigures] = {}
    for b in batches:
        if b.task_type is None:
            continue
        plan = plans.get(b.batch_id)
        size = int((plan.decision if plan else {}).get("prefix_tokens") or 0)
        figures = found.setdefault((b.task_type, b.model), PrefixFigures(b.task_type, b.model))
        figures.responses += b.responses
        figures.prefix_tokens = max(figures.prefix_tokens, size)
        figures.read += b.cache_read_tokens
        figures.written += b.cache_write_tokens
        if b.responses and b.cache_ttl is not None:
            observed = (b.cache_read_tokens + b.cache_write_tokens) // b.responses
            figures.cached_prefix_tokens = max(figures.cached_prefix_tokens, observed)
        unaccounted = max(0, size * b.responses - b.cache_read_tokens - b.cache_write_tokens)
        if size < _minimum(b.model):
            figures.below_minimum += unaccounted
        elif b.cache_ttl is None:
            figures.not_marked += unaccounted
        # A marked batch's remainder is the gap between the planner's count and the API's: not a bucket.
    return sorted(found.values(), key=lambda f: (f.task_type, f.model))


def below_plan(batches: Iterable[BatchCache], plans: dict[int, BatchPlan]) -> list[str]:
    """Attention items: fan-out batches whose read share fell well below the rate their plan used."""
    items = []
    for b in batches:
        plan = plans.get(b.batch_id)
        if plan is None or plan.cache_role != "fanout" or b.cache_read_tokens + b.cache_write_tokens == 0:
            continue
        expected = float(plan.decision.get("hit_rate") or 0.0)
        actual = b.cache_read_tokens / (b.cache_read_tokens + b.cache_write_tokens)
        if (expected - actual) * 100 > BELOW_PLAN_POINTS:
            group = f"{b.model}/{(plan.prefix_hash or '')[:12]}"
            items.append(
                f"batch {b.provider_batch_id or b.batch_id} ({b.task_type}, group {group}): "
                f"read {actual:.0%} of its cached prefix tokens, its plan expected {expected:.0%}; the planner "
                "will use the measured rate for this group from now on"
            )
    return items


@dataclass(frozen=True)
class PaddingAdvice:
    task_type: str
    model: str
    prefix_tokens: int
    minimum: int
    requests: int
    saving_usd: Decimal | None  # per run of ``requests`` (None: padding would not pay)
    alternatives: tuple[tuple[str, int], ...]  # models of the same family with a lower minimum

    def text(self) -> str:
        head = (f"{self.task_type}: prefix {self.prefix_tokens:,} tokens < {self.minimum:,} minimum of {self.model}, "
                "not cached")  # fmt: skip
        if self.saving_usd is not None:
            head += (f"; padding it to {self.minimum:,} (cache = {{ pad_to_minimum = true }}) would save "
                     f"${self.saving_usd:.2f} a run of {self.requests:,}")  # fmt: skip
        else:
            head += f"; padding it to {self.minimum:,} would not pay at {self.requests:,} requests a run"
        if self.alternatives:
            head += "; " + ", ".join(f"{m} caches from {n:,}" for m, n in self.alternatives)
        return head


def padding_advice(
    task_type: str, model: str, prefix_tokens: int, requests: int, prices: PriceTable, *, hit_rate: float | None = None
) -> PaddingAdvice | None:
    """Advice for a prefix below ``model``'s minimum (None when it is not below, or is empty).

    The saving compares sending the prefix as it is, uncached, with padding it to the minimum and sending
    it as the planner would (a pilot, then reads), per run of ``requests``.
    """
    minimum = _minimum(model)
    if prefix_tokens <= 0 or prefix_tokens >= minimum:
        return None
    price = prices.price(model)
    now = requests * prefix_tokens * price.input / Decimal(1_000_000) * BATCH_DISCOUNT
    padded = plan_group(model=model, prices=prices, prefix_tokens=minimum, requests=requests, hit_rate=hit_rate)
    saving = now - Decimal(padded.cost_usd[padded.option]) if padded.cached else None
    family = model_info(model).family
    alternatives = tuple(
        (name, info.min_cacheable_tokens)
        for name, info in sorted(load_catalog().items())
        if info.family == family and name != model and info.min_cacheable_tokens < minimum
    )
    return PaddingAdvice(task_type, model, prefix_tokens, minimum, requests,
                         saving if saving is not None and saving > 0 else None, alternatives)  # fmt: skip
