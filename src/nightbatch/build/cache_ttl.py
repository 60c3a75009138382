"""Choosing the cache TTL of a shared prefix by break-even arithmetic, not by habit.

For ``n`` requests sharing a prefix of ``p`` tokens, processed over an expected ``D`` minutes, we price
three options with the model's real (batch-discounted) write and read prices and keep the cheapest:

- **no caching**: ``n * p`` tokens at the input price.
- **5 m or 1 h TTL**: the first wave (``concurrency`` requests started before any write is usable)
  all write. After that, a request hits if the entry is still alive: it is refreshed by every hit, so it
  survives as long as the gap to the previous request sharing it is shorter than the TTL. Treating the
  group's arrivals as a Poisson stream at rate ``λ = n / D``, a request finds the entry alive with
  probability ``1 - exp(-λ·TTL)``; otherwise it writes again.

So a busy prefix (many requests per TTL) prefers the cheaper 5 m write, a sparse one the 1 h TTL (the
docs' advice for batches that take longer than 5 minutes), and a prefix used once, or shorter than the
model's minimum cacheable length, is not cached at all (a write costs more than plain input and the API
would ignore the breakpoint anyway). The decision and the figures behind it are recorded on the batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, cast

from nightbatch.build.prefix import CacheTTL
from nightbatch.catalog import model_info
from nightbatch.pricing import BATCH_DISCOUNT, PriceTable

__all__ = ["CacheDecision", "decide_ttl"]

_TTL_MINUTES: dict[CacheTTL, float] = {"5m": 5.0, "1h": 60.0}
PRIMED = "1h+priming"


@dataclass(frozen=True)
class CacheDecision:
    """Which TTL a prefix group gets, and why."""

    ttl: CacheTTL | None
    prime: bool
    reason: str
    requests: int
    prefix_tokens: int
    expected_minutes: float
    expected_writes: float
    cost_usd: dict[str, str]
    expected_saving_usd: str

    @property
    def option(self) -> str:
        """The priced option chosen: ``none``, ``5m``, ``1h`` or ``1h+priming``."""
        return PRIMED if self.prime else self.ttl or "none"

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def _per_token(usd_per_mtok: Decimal, batch: bool) -> Decimal:
    return usd_per_mtok / Decimal(1_000_000) * (BATCH_DISCOUNT if batch else Decimal(1))


def expected_writes(requests: int, concurrency: int, expected_minutes: float, ttl_minutes: float) -> float:
    """Expected number of requests that pay a cache write (see the module docstring)."""
    first_wave = min(requests, max(1, concurrency))
    rest = requests - first_wave
    if rest <= 0:
        return float(first_wave)
    rate = requests / max(expected_minutes, 1e-9)
    p_alive = 1.0 - math.exp(-rate * ttl_minutes)
    return first_wave + rest * (1.0 - p_alive)


def decide_ttl(
    *,
    model: str,
    prices: PriceTable,
    prefix_tokens: int,
    requests: int,
    expected_minutes: float = 60.0,
    concurrency: int = 1,
    batch: bool = True,
    mode: str = "auto",
    allow_priming: bool = False,
) -> CacheDecision:
    """Pick the cheapest way to send one prefix group (``mode`` can force a TTL or switch caching off).

    With ``allow_priming``, one more option is priced: a real-time request (standard prices) writes the
    prefix under the 1-hour TTL before the batch is created, so the batch's first wave reads instead of
    writing. Only the 1-hour TTL is primed: a batch can wait in the provider's queue for longer than five
    minutes before its first request runs, and a 5-minute entry written ahead of it could be gone.
    """
    price = prices.price(model)
    minimum = model_info(model).min_cacheable_tokens
    read = _per_token(price.cache_read, batch)
    costs: dict[str, Decimal] = {"none": requests * prefix_tokens * _per_token(price.input, batch)}
    writes: dict[str, float] = {"none": 0.0}
    write_price = {"5m": price.cache_write_5m, "1h": price.cache_write_1h}

    def cached_cost(ttl: CacheTTL, expected: float) -> Decimal:
        w = Decimal(str(round(expected, 6)))
        return prefix_tokens * (w * _per_token(write_price[ttl], batch) + (requests - w) * read)

    for ttl, minutes in _TTL_MINUTES.items():
        writes[ttl] = expected_writes(requests, concurrency, expected_minutes, minutes)
        costs[ttl] = cached_cost(ttl, writes[ttl])
    if allow_priming and requests >= 2:
        first_wave = min(requests, max(1, concurrency))
        writes[PRIMED] = writes["1h"] - first_wave  # lapses only: the first wave now reads
        costs[PRIMED] = cached_cost("1h", writes[PRIMED]) + prefix_tokens * _per_token(price.cache_write_1h, False)

    chosen = "none"
    if prefix_tokens < minimum:
        reason = f"prefix of {prefix_tokens} tokens is below {model}'s minimum cacheable length ({minimum})"
    elif mode == "off":
        reason = "caching switched off for this task type"
    elif mode in _TTL_MINUTES:
        chosen, reason = mode, f"TTL {mode} forced by the task type's cache policy"
    elif requests < 2:
        reason = "a prefix used once gains nothing from a cache write"
    else:
        chosen = min(costs, key=lambda k: costs[k])
        reason = "cheapest by expected cost" if chosen != "none" else "no TTL beats plain input at this volume"
    saving = costs["none"] - costs[chosen]
    chosen_ttl: CacheTTL | None = None if chosen == "none" else "1h" if chosen == PRIMED else cast(CacheTTL, chosen)
    return CacheDecision(
        ttl=chosen_ttl,
        prime=chosen == PRIMED,
        reason=reason,
        requests=requests,
        prefix_tokens=prefix_tokens,
        expected_minutes=expected_minutes,
        expected_writes=round(writes[chosen], 3),
        cost_usd={k: f"{v:.6f}" for k, v in costs.items()},
        expected_saving_usd=f"{saving:.6f}",
    )
