"""Money and rates rounded for people: one rule for every table, line and artifact of the report.

Exact figures (12 decimal places, :func:`nightbatch.report.render.usd`) are for JSON and CSV; these are for
reading, so that the same amount never reads ``$0.0000`` in one place and ``$0.000010`` in another.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from nightbatch.pricing import pusd_to_usd

__all__ = ["percent_text", "usd_text"]


def usd_text(pusd: int | None) -> str:
    """Dollars rounded for reading: cents from $1 (and for nothing at all: ``$0.00``), then 4 and 6
    decimal places for small amounts; an amount that would round to nothing reads ``<$0.000001``."""
    if pusd is None:
        return "–"
    value = abs(pusd_to_usd(pusd))
    places = 2 if value >= 1 or value == 0 else 4 if value >= Decimal("0.01") else 6
    rounded = value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    sign = "-" if pusd < 0 else ""
    return f"{sign}<$0.000001" if value and not rounded else f"{sign}${rounded:,}"


def percent_text(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.1%}"
