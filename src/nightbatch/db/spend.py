"""What the ledger says was spent: the reads the budget caps are checked against."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import UsageRecord

__all__ = ["spent_since_pusd"]


def spent_since_pusd(engine: Engine, since: datetime) -> int:
    """The priced cost of every usage record since ``since``, in pico-dollars.

    Unpriced rows (NULL cost) are not in the sum: they are reported elsewhere.
    """
    with engine.connect() as conn:
        total = conn.execute(
            select(func.coalesce(func.sum(UsageRecord.cost_pusd), 0)).where(col(UsageRecord.created_at) >= since)
        ).scalar_one()
    return int(total or 0)
