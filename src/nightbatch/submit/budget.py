"""The hard budget: what would exceed it is not submitted, stays queued, and the run says so.

The Batches API lets a batch run past a workspace's spend limit, so the cap must hold before ``create``.
Each request is priced at its upper bound before it goes out: its prefix at the dearest price the cache
decision allows (a cached request may miss and pay the write), its per-task input (a local token estimate)
and ``max_tokens`` of output, all at batch prices. Requests are taken in the order they were packed (claim
order: priority first) until the next one would cross either cap:

- **per run**: the forecast of everything this run submits;
- **per day** (UTC): the day's actual spend in the ledger plus this run's forecast.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from nightbatch.build.cache_ttl import CacheDecision
from nightbatch.build.requests import BuiltRequest
from nightbatch.db import Engine
from nightbatch.db.spend import spent_since_pusd
from nightbatch.pricing import BATCH_DISCOUNT, PriceTable, geo_multiplier, pusd_to_usd

__all__ = ["Budget", "request_bound_usd", "spent_today_usd"]

_MTOK = Decimal(1_000_000)


def request_bound_usd(prices: PriceTable, request: BuiltRequest, decision: CacheDecision | None) -> Decimal:
    """An upper-bound forecast of one request's batch cost (long-prompt band and US-inference 1.1x included)."""
    prompt = request.tail_tokens + (decision.prefix_tokens if decision else 0)
    price = prices.price(request.model).for_prompt(prompt)
    geo = geo_multiplier(request.prefix.settings.get("inference_geo"))
    prefix = decision.prefix_bound_usd(prices, request.model, prompt_tokens=prompt) if decision else Decimal(0)
    tail = request.tail_tokens * price.input / _MTOK * BATCH_DISCOUNT
    output = request.max_tokens * price.output / _MTOK * BATCH_DISCOUNT
    return (prefix + tail + output) * geo


def spent_today_usd(engine: Engine, now: datetime | None = None) -> Decimal:
    """What the ledger says was spent since midnight UTC."""
    midnight = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    return pusd_to_usd(spent_since_pusd(engine, midnight))  # unpriced rows (NULL cost) are not in the sum


@dataclass
class Budget:
    """Caps for one run; None means no cap."""

    per_run_usd: Decimal | None = None
    per_day_usd: Decimal | None = None
    spent_today_usd: Decimal = Decimal(0)
    committed_usd: Decimal = Decimal(0)
    stopped: str | None = None

    @property
    def active(self) -> bool:
        return self.per_run_usd is not None or self.per_day_usd is not None

    def admit(self, cost_usd: Decimal) -> bool:
        """Whether one more request of this forecast cost fits; remembers it when it does."""
        run_total = self.committed_usd + cost_usd
        if self.per_run_usd is not None and run_total > self.per_run_usd:
            self.stopped = f"run budget ${self.per_run_usd} reached (forecast ${self.committed_usd:.6f} submitted)"
            return False
        if self.per_day_usd is not None and self.spent_today_usd + run_total > self.per_day_usd:
            self.stopped = (
                f"daily budget ${self.per_day_usd} reached (spent today ${self.spent_today_usd:.6f}, "
                f"this run's forecast ${self.committed_usd:.6f})"
            )
            return False
        self.committed_usd = run_total
        return True
