"""What a usage record costs, exactly, in integer picodollars.

Money here is an ``int`` of **picodollars** (pUSD, 1e-12 USD), never a float. Why that unit: prices are
quoted in USD per million tokens with at most cent precision, and the smallest multiplier ever applied to
an input price is 0.025 (a batch cache read on a model whose reads are 0.05x input: 0.05 x 0.5). Even
then $0.01/MTok x 0.025 = $0.00025/MTok = 250 pUSD per token. So in pUSD every per-token price is an
integer, every cost is tokens x integer, and sums over millions of tasks are exact (no rounding anywhere).
The price table refuses prices that would break this (see :mod:`nightbatch.pricing.table`). Convert to
dollars only for display or storage, with :func:`pusd_to_usd` / :attr:`Cost.usd`.

Pricing rules (Anthropic, Nov 2026):

* ``input_tokens`` in the API's usage excludes cached tokens, so the five token counts of :class:`Usage`
  are disjoint and each is charged at its own column of the price table.
* The Message Batches API bills **everything at 50 %** (:data:`BATCH_DISCOUNT`), stacking with the cache
  multipliers: in a batch uncached input costs 0.5x the input price, a 5-minute cache write 0.625x, a
  1-hour write 1.0x, a read 0.05x (0.025x on models whose reads are 0.05x), output 0.5x the output price.
* A request sent with ``inference_geo = "us"`` (US-only inference) pays **1.1x on every category**
  (:data:`GEO_MULTIPLIERS`); it stacks with the batch discount (0.55x). The multiplier is applied to the
  per-token price, which the table guarantees stays a whole number of picodollars.
* A model with a long-prompt band (Haiku 5.5: above 100,000 prompt tokens, prompt = input + cache writes
  + cache reads) charges a request over the threshold the band's prices on **every** token of it,
  output included; at or below it, the ordinary row. The band is decided per request, so price each
  request's usage on its own (a sum of usages would cross the threshold that no request crossed).
* The price row is the one in force on the day the usage was **billed** (``at``): for a batch result,
  the day its batch ended.
* Errored, canceled and expired batch requests are not billed; callers simply do not price them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, get_args

from nightbatch.pricing.table import ModelPrice, PriceTable

if TYPE_CHECKING:
    from anthropic.types import Usage as AnthropicUsage

__all__ = [
    "BATCH_DISCOUNT",
    "GEO_MULTIPLIERS",
    "PUSD_PER_USD",
    "Cost",
    "ServiceTier",
    "Usage",
    "geo_multiplier",
    "price_usage",
    "pusd_to_usd",
    "usd_to_pusd",
]

ServiceTier = Literal["batch", "standard"]
"""How a request was billed: through the Message Batches API or the ordinary Messages API."""

BATCH_DISCOUNT = Decimal("0.5")
"""Multiplier the Message Batches API applies to every token price (input, cache writes/reads, output)."""

GEO_MULTIPLIERS: dict[str, Decimal] = {"us": Decimal("1.1")}
"""Multiplier on every token price by ``inference_geo``; any other value (``global``, absent) is 1x."""

PUSD_PER_USD = 10**12
_TOKENS_PER_MTOK = 10**6


def pusd_to_usd(pusd: int) -> Decimal:
    """Picodollars as an exact Decimal number of dollars (12 decimal places)."""
    return Decimal(f"{pusd}E-12")


def usd_to_pusd(usd: Decimal) -> int:
    """Dollars as exact picodollars; :class:`ValueError` if ``usd`` has a fraction of a picodollar."""
    value = Decimal(usd)
    if not value.is_finite():
        raise ValueError(f"{usd} USD is not a whole number of picodollars")
    # Integer arithmetic on the digits: Decimal.scaleb would round beyond the context's 28 digits.
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    magnitude = int("".join(map(str, digits)) or "0")
    shift = exponent + 12
    scale: int = 10 ** abs(shift)
    if shift >= 0:
        pusd = magnitude * scale
    else:
        pusd, remainder = divmod(magnitude, scale)
        if remainder:
            raise ValueError(f"{usd} USD is not a whole number of picodollars")
    return -pusd if sign else pusd


@dataclass(frozen=True)
class Usage:
    """Token counts of one request, split the way they are billed. The five counts are disjoint."""

    input_tokens: int = 0
    """Uncached prompt tokens (after the last cache breakpoint), as the API reports ``input_tokens``."""
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Usage.{f.name} must be a non-negative int, got {value!r}")

    @property
    def prompt_tokens(self) -> int:
        """All prompt tokens: uncached input + cache writes + cache reads."""
        return self.input_tokens + self.cache_write_5m_tokens + self.cache_write_1h_tokens + self.cache_read_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @classmethod
    def from_api(cls, usage: AnthropicUsage | Mapping[str, Any]) -> Usage:
        """Build from the SDK's ``anthropic.types.Usage`` or the raw ``usage`` dict of an API response.

        Cache writes are split by TTL using ``cache_creation`` ({ephemeral_5m_input_tokens,
        ephemeral_1h_input_tokens}) when present. When only the older ``cache_creation_input_tokens`` is
        present (responses without the breakdown), all of it is counted as **5-minute** writes: that is the
        default TTL, and the cheaper of the two, so such a cost may be understated if 1-hour writes were used.
        Missing or null counts are 0.
        """
        breakdown = _get(usage, "cache_creation")
        if breakdown is not None:
            write_5m = _count(_get(breakdown, "ephemeral_5m_input_tokens"))
            write_1h = _count(_get(breakdown, "ephemeral_1h_input_tokens"))
        else:
            write_5m = _count(_get(usage, "cache_creation_input_tokens"))
            write_1h = 0
        return cls(
            input_tokens=_count(_get(usage, "input_tokens")),
            output_tokens=_count(_get(usage, "output_tokens")),
            cache_write_5m_tokens=write_5m,
            cache_write_1h_tokens=write_1h,
            cache_read_tokens=_count(_get(usage, "cache_read_input_tokens")),
        )


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"token count must be an int or null, got {value!r}")
    return value


@dataclass(frozen=True)
class Cost:
    """The exact cost of some usage, per component, in integer picodollars. ``Cost()`` is zero; costs add."""

    input_pusd: int = 0
    output_pusd: int = 0
    cache_write_5m_pusd: int = 0
    cache_write_1h_pusd: int = 0
    cache_read_pusd: int = 0

    @property
    def total_pusd(self) -> int:
        """The sum of all components, in picodollars."""
        return sum(getattr(self, f.name) for f in fields(self))

    @property
    def usd(self) -> Decimal:
        """The total in dollars, exact (12 decimal places)."""
        return pusd_to_usd(self.total_pusd)

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def geo_multiplier(inference_geo: str | None) -> Decimal:
    """The multiplier every token price takes for a request served at ``inference_geo``."""
    return GEO_MULTIPLIERS.get(inference_geo or "", Decimal(1))


def _pusd_per_token(usd_per_mtok: Decimal, tier: ServiceTier, geo: Decimal = Decimal(1)) -> int:
    rate = usd_per_mtok * PUSD_PER_USD / _TOKENS_PER_MTOK * geo
    if tier == "batch":
        rate *= BATCH_DISCOUNT
    # The table loader guarantees integrality; a ModelPrice built by hand might not.
    if rate != rate.to_integral_value():
        raise ValueError(f"{usd_per_mtok} USD/MTok is not a whole number of picodollars per token ({tier} tier)")
    return int(rate)


def _price_with(
    price: ModelPrice,
    usage: Usage,
    tier: ServiceTier,
    inference_geo: str | None = None,
    long_prompt: bool | None = None,
) -> Cost:
    if tier not in get_args(ServiceTier):
        raise ValueError(f"unknown service tier {tier!r}; expected one of {get_args(ServiceTier)}")
    if long_prompt is None:
        rates = price.for_prompt(usage.prompt_tokens)
    else:
        rates = price.long_prompt if long_prompt and price.long_prompt is not None else price
    geo = geo_multiplier(inference_geo)
    return Cost(
        input_pusd=usage.input_tokens * _pusd_per_token(rates.input, tier, geo),
        output_pusd=usage.output_tokens * _pusd_per_token(rates.output, tier, geo),
        cache_write_5m_pusd=usage.cache_write_5m_tokens * _pusd_per_token(rates.cache_write_5m, tier, geo),
        cache_write_1h_pusd=usage.cache_write_1h_tokens * _pusd_per_token(rates.cache_write_1h, tier, geo),
        cache_read_pusd=usage.cache_read_tokens * _pusd_per_token(rates.cache_read, tier, geo),
    )


def price_usage(
    table: PriceTable,
    model: str,
    usage: Usage,
    tier: ServiceTier,
    at: date | None = None,
    *,
    inference_geo: str | None = None,
    long_prompt: bool | None = None,
) -> Cost:
    """The cost of one request's ``usage`` on ``model`` billed at ``tier`` on ``at`` (default today, UTC).

    ``inference_geo`` is where it ran (``"us"``: 1.1x on everything). ``usage`` must be ONE request's
    when the model has a long-prompt band (see the module docstring), unless ``long_prompt`` says which
    prices to use: True (the band's, when the model has one) or False (the ordinary row's), for a sum of
    requests known to be on one side. Raises :class:`~nightbatch.errors.UnknownModelError` for a model
    the table does not price.
    """
    return _price_with(table.price(model, at), usage, tier, inference_geo, long_prompt)
