"""Dollar amounts rounded for people: the one rule of every table, line, message and artifact.

Cents from $1 (and for nothing at all: ``$0.00``), then 4 and 6 decimal places for small amounts, so that
a small night never reads ``$0.00``; an amount that would round to nothing reads ``<$0.000001``. Exact
figures (picodollars, 12 places) are for JSON and CSV. A leaf module: the outcome policy uses it too.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

__all__ = ["dollars_text"]


def dollars_text(amount: Decimal) -> str:
    """``amount`` (dollars) as people read it, by the rule above."""
    value = abs(amount)
    places = 2 if value >= 1 or value == 0 else 4 if value >= Decimal("0.01") else 6
    rounded = value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    sign = "-" if amount < 0 else ""
    return f"{sign}<$0.000001" if value and not rounded else f"{sign}${rounded:,}"
