"""Money and rates rounded for people: one rule for every table, line and artifact of the report.

Exact figures (12 decimal places, :func:`nightbatch.report.render.usd`) are for JSON and CSV; these are for
reading, so that the same amount never reads ``$0.0000`` in one place and ``$0.000010`` in another.
"""

from __future__ import annotations

from nightbatch.dollars import dollars_text
from nightbatch.pricing import pusd_to_usd

__all__ = ["percent_text", "usd_text"]


def usd_text(pusd: int | None) -> str:
    """Picodollars rounded for reading (:func:`nightbatch.dollars.dollars_text`); ``–`` for no figure."""
    return "–" if pusd is None else dollars_text(pusd_to_usd(pusd))


def percent_text(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.1%}"
