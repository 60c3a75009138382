"""Prices and costs: the versioned price table and exact per-task cost in integer picodollars.

>>> table = load_price_table()                      # the packaged table (or your own file)
>>> cost = price_usage(table, "claude-haiku-4-5", Usage(input_tokens=2_000, output_tokens=100), "batch")
>>> cost.usd                                         # Decimal dollars; cost.total_pusd is the exact int
Decimal('0.001250000000')

Record ``table.version`` next to every cost so a figure can always be traced to the prices behind it.
"""

from __future__ import annotations

from nightbatch.pricing.cost import (
    BATCH_DISCOUNT,
    GEO_MULTIPLIERS,
    PUSD_PER_USD,
    Cost,
    ServiceTier,
    Usage,
    geo_multiplier,
    price_usage,
    pusd_to_usd,
    usd_to_pusd,
)
from nightbatch.pricing.table import PRICE_FIELDS, ModelPrice, PriceTable, default_price_table_path, load_price_table

__all__ = [
    "BATCH_DISCOUNT",
    "GEO_MULTIPLIERS",
    "PRICE_FIELDS",
    "PUSD_PER_USD",
    "Cost",
    "ModelPrice",
    "PriceTable",
    "ServiceTier",
    "Usage",
    "default_price_table_path",
    "geo_multiplier",
    "load_price_table",
    "price_usage",
    "pusd_to_usd",
    "usd_to_pusd",
]
