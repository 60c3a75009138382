"""How to send one prefix group through the batch cache: no caching, a pilot then the fan-out, or reads.

What the live API does (see docs/reliability.md, "Batch caching"): real-time calls and batches do not share
a cache, and items of one batch never read each other's writes. A **cold** batch sent with a breakpoint
therefore pays a cache write on *every* item (1.25x or 2x input, halved) — dearer than no caching — so a
cold group is never sent with breakpoints. Per group of ``n`` requests sharing ``p`` prefix tokens, with
``h`` the hit rate measured for the group in earlier batches (an assumed prior until there is one), batch
prices per token ``i`` (input), ``w`` (write at the TTL) and ``r`` (read):

- **none**: ``n·p·i``;
- **pilot** (``pilot_1h``, or ``pilot_5m`` when the fan-out surely starts within 5 minutes of the pilot's
  end): one task alone writes (``p·w``); when it has ended the other ``n-1`` are sent and each reads with
  probability ``h``, else writes again: ``p·w + (n-1)·p·(h·r + (1-h)·w)``. The pilot costs time too: the
  group's other tasks wait for it, so it is only priced when the run's deadline leaves room for the pilot
  *and* the fan-out after it;
- **warm** (a live entry is known from an earlier batch's usage): ``n·p·(h·r + (1-h)·w)``, sent at once;
- ``cold_cached``, ``n·p·w``: what "cached without a pilot" would cost. Priced for reference, never chosen.

The cheapest allowed option wins. A group whose pilot is still running **waits** (its tasks stay queued).
Pure: no database, no clock. The caller passes what it measured; the decision and every figure behind it
are recorded on the batch row (``cache_decision``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

from nightbatch.build.prefix import CacheTTL
from nightbatch.catalog import model_info
from nightbatch.pricing import BATCH_DISCOUNT, PriceTable

__all__ = ["PRIOR_HIT_RATE", "CacheDecision", "Option", "plan_group"]

Option = Literal["none", "pilot_1h", "pilot_5m", "warm", "wait"]

# The hit rate assumed for a group before any fan-out of its model was measured. Unverified: the batch guide
# quotes 30–98% as best effort; users measured ~100% after a priming batch. 0.8 keeps the planner from
# betting on the best case: the 1 h pilot then still pays from a few requests on (break-even is h > 0.53).
PRIOR_HIT_RATE = 0.8
MAX_PILOT_FAILURES = 2
# How long before its expiry a known entry is no longer trusted: a batch may queue at the provider before
# its first item runs. A shorter-lived entry is trusted for up to half its TTL (a 5-minute entry just
# confirmed by its pilot is worth reading at once: otherwise a group forced to 5 m would pilot forever).
LIVE_MARGIN_MINUTES = 10.0


def live_margin_minutes(ttl_minutes: float | None) -> float:
    """Minutes of known life a warm entry needs before a fan-out is sent to read it."""
    return LIVE_MARGIN_MINUTES if ttl_minutes is None else min(LIVE_MARGIN_MINUTES, ttl_minutes / 2)


@dataclass(frozen=True)
class CacheDecision:
    """How a prefix group is sent now, and why."""

    option: Option
    reason: str
    requests: int
    prefix_tokens: int
    hit_rate: float
    hit_rate_source: str
    cost_usd: dict[str, str]
    expected_saving_usd: str
    pilot_minutes: float | None = None
    minutes_to_deadline: float | None = None
    measured: dict[str, Any] | None = field(default=None)
    write_ttl: CacheTTL = "1h"

    @property
    def ttl(self) -> CacheTTL | None:
        """The breakpoint TTL of what is sent now (None: no breakpoint)."""
        if self.option in ("pilot_1h", "pilot_5m", "warm"):
            return self.write_ttl
        return None

    @property
    def pilot(self) -> bool:
        return self.option in ("pilot_1h", "pilot_5m")

    @property
    def cached(self) -> bool:
        return self.option in ("pilot_1h", "pilot_5m", "warm")

    def prefix_bound_usd(self, prices: PriceTable, model: str, *, prompt_tokens: int = 0) -> Decimal:
        """An upper bound on one request's prefix cost (for the hard budget): a cached request may miss and write.

        ``prompt_tokens``: the whole request's prompt, which picks the price band (Haiku 5.5's long prompts).
        """
        if self.prefix_tokens <= 0 or self.option == "wait":
            return Decimal(0)
        price = prices.price(model).for_prompt(prompt_tokens)
        per_mtok = price.cache_write_1h if self.write_ttl == "1h" else price.cache_write_5m
        if not self.cached:
            per_mtok = price.input
        return self.prefix_tokens * _per_token(per_mtok)

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["ttl"] = self.ttl
        return record


def _per_token(usd_per_mtok: Decimal) -> Decimal:
    return usd_per_mtok / Decimal(1_000_000) * BATCH_DISCOUNT


def plan_group(
    *,
    model: str,
    prices: PriceTable,
    prefix_tokens: int,
    requests: int,
    mode: str = "auto",
    hit_rate: float | None = None,
    measured: dict[str, Any] | None = None,
    live_minutes: float = 0.0,
    live_ttl_minutes: float | None = None,
    pilot_running: bool = False,
    pilot_failures: int = 0,
    pilot_minutes: float = 15.0,
    fanout_minutes: float = 60.0,
    minutes_to_deadline: float | None = None,
    fanout_lag_minutes: float | None = None,
) -> CacheDecision:
    """Pick how to send one group of ``requests`` now (see the module docstring).

    ``live_minutes``: how long a known batch-cache entry surely stays alive (0: none known);
    ``live_ttl_minutes``: that entry's TTL (it sets how close to its expiry it is still trusted).
    ``pilot_minutes``: how long a one-request pilot batch is expected to take, to its ingest.
    ``fanout_minutes``: how long the group's batch is expected to take.
    ``minutes_to_deadline``: time left in the run (None: no deadline).
    ``fanout_lag_minutes``: a sure upper bound on the time from a pilot's end to its fan-out starting
    (None: unknown, so the 5-minute TTL is never used for a pilot).
    """
    price = prices.price(model)
    minimum = model_info(model).min_cacheable_tokens
    h = PRIOR_HIT_RATE if hit_rate is None else min(1.0, max(0.0, hit_rate))
    source = "prior (no fan-out measured yet)" if hit_rate is None else "measured"
    hd = Decimal(str(round(h, 6)))
    p, n = Decimal(prefix_tokens), Decimal(requests)
    inp, read = _per_token(price.input), _per_token(price.cache_read)
    write = {"5m": _per_token(price.cache_write_5m), "1h": _per_token(price.cache_write_1h)}

    def per_read(ttl: str) -> Decimal:
        return hd * read + (1 - hd) * write[ttl]

    costs: dict[str, Decimal] = {
        "none": n * p * inp,
        "pilot_1h": p * write["1h"] + max(n - 1, Decimal(0)) * p * per_read("1h"),
        "pilot_5m": p * write["5m"] + max(n - 1, Decimal(0)) * p * per_read("5m"),
        "warm": n * p * per_read("1h"),
        "cold_cached": n * p * write["1h"],
    }
    forced = mode if mode in ("5m", "1h") else None
    write_ttl: CacheTTL = "5m" if forced == "5m" else "1h"
    allowed: list[Option] = ["none"]
    room = minutes_to_deadline is None or pilot_minutes + fanout_minutes <= minutes_to_deadline
    reason = ""
    if prefix_tokens < minimum:
        reason = f"prefix of {prefix_tokens} tokens is below {model}'s minimum cacheable length ({minimum})"
    elif mode == "off":
        reason = "caching switched off for this task type"
    elif pilot_running:
        if room:
            why = "a pilot batch of this group is running: the group waits for it"
            return _decision("wait", why, costs, h, source, measured, requests, prefix_tokens, pilot_minutes,
                             minutes_to_deadline, write_ttl)  # fmt: skip
        reason = "a pilot is running but the deadline leaves no time to wait for it: sent uncached"
    elif live_minutes > 0 and live_minutes >= live_margin_minutes(live_ttl_minutes):
        allowed.append("warm")
    elif requests < 2:
        reason = "a single request of a cold prefix gains nothing from a cache write"
    elif pilot_failures >= MAX_PILOT_FAILURES:
        reason = f"{pilot_failures} pilots of this group wrote nothing: sent uncached"
    elif not room:
        reason = (f"no room for a pilot: it takes ~{pilot_minutes:.0f} min and the fan-out ~{fanout_minutes:.0f} min, "
                  f"the deadline is in {minutes_to_deadline:.0f} min")  # fmt: skip
    elif forced:
        # The pilot's own entry must outlive the pilot's latency: a forced 5 m TTL marks the fan-out's
        # breakpoints, and the pilot writes for 5 m only when the fan-out surely follows within 5 minutes.
        quick = fanout_lag_minutes is not None and fanout_lag_minutes <= 5.0
        allowed = ["pilot_5m" if forced == "5m" and quick else "pilot_1h"]
    else:
        allowed.append("pilot_1h")
        if fanout_lag_minutes is not None and fanout_lag_minutes <= 5.0:
            allowed.append("pilot_5m")
    if forced and "warm" in allowed:
        allowed = ["warm"]
    chosen: Option = min(allowed, key=lambda k: costs[k])
    if chosen == "pilot_5m":
        write_ttl = "5m"
    elif chosen == "pilot_1h":
        write_ttl = "1h"
    if not reason:
        if forced:
            reason = f"TTL {forced} forced by the task type's cache policy"
        elif chosen == "none":
            reason = f"caching does not pay at a {source} hit rate of {h:.0%}"
        elif chosen == "warm":
            reason = f"a batch-cache entry is known alive for {live_minutes:.0f} more min: reads at once"
        else:
            reason = "cheapest by expected cost: one pilot writes, the rest read after it"
    return _decision(chosen, reason, costs, h, source, measured, requests, prefix_tokens, pilot_minutes,
                     minutes_to_deadline, write_ttl)  # fmt: skip


def _decision(option: Option, reason: str, costs: dict[str, Decimal], h: float, source: str,
              measured: dict[str, Any] | None, requests: int, prefix_tokens: int, pilot_minutes: float,
              minutes_to_deadline: float | None, write_ttl: CacheTTL) -> CacheDecision:  # fmt: skip
    chosen_cost = costs["none"] if option == "wait" else costs[option]
    return CacheDecision(
        option=option,
        reason=reason,
        requests=requests,
        prefix_tokens=prefix_tokens,
        hit_rate=round(h, 4),
        hit_rate_source=source,
        cost_usd={k: f"{v:.6f}" for k, v in costs.items()},
        expected_saving_usd=f"{costs['none'] - chosen_cost:.6f}",
        pilot_minutes=round(pilot_minutes, 2),
        minutes_to_deadline=None if minutes_to_deadline is None else round(minutes_to_deadline, 2),
        measured=measured,
        write_ttl=write_ttl,
    )
