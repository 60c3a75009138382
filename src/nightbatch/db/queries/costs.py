"""What the ledger (``usage_record``) cost: summed per group, per day and model, and what could not be priced."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, case, func, literal_column, select
from sqlmodel import col

from nightbatch.db.models import Task, UsageRecord
from nightbatch.db.queries._sql import TOKEN_SUMS, as_int, usage_of, utc_day
from nightbatch.db.queries.selection import Selection, midnight
from nightbatch.pricing import Usage

__all__ = [
    "DayModelCost",
    "LedgerGroup",
    "daily_model_costs",
    "ledger_groups",
    "price_versions",
    "thinking_tokens",
    "unpriced_by_model",
]


@dataclass(frozen=True)
class LedgerGroup:
    """Usage rows summed per (task type, model, purpose, service tier, UTC day billed, geo, prompt band).

    ``task_type`` is None for rows that serve no task (priming, calibration probes). ``day`` is the day the
    rows were billed (``billed_at``, else ``created_at``): the day whose price rows re-price them.
    ``unpriced`` of the ``responses`` have no cost (NULL: their model had no price row); ``cost_pusd`` is
    the sum of the others. ``long_prompt`` is the largest long-prompt threshold of the price table that
    every row's prompt exceeds (0: none), so a sum of rows can be re-priced with each row's own band.
    """

    task_type: str | None
    model: str
    purpose: str
    service_tier: str
    day: date
    responses: int
    usage: Usage
    cost_pusd: int
    unpriced: int = 0
    inference_geo: str | None = None
    long_prompt: int = 0


@dataclass(frozen=True, order=True)
class DayModelCost:
    """What one model cost on one UTC day (all purposes)."""

    day: date
    model: str
    cost_pusd: int
    unpriced: int = 0  # responses with no price row: not in cost_pusd


def _band(thresholds: Sequence[int]) -> ColumnElement[Any]:
    """The largest of ``thresholds`` the row's prompt (input + writes + reads) exceeds, 0 for none, in SQL.

    Literal thresholds, for the same reason as :func:`~nightbatch.db.queries._sql.utc_day` (GROUP BY
    matching on PostgreSQL).
    """
    prompt = (
        col(UsageRecord.input_tokens)
        + col(UsageRecord.cache_write_5m_tokens)
        + col(UsageRecord.cache_write_1h_tokens)
        + col(UsageRecord.cache_read_tokens)
    )
    whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = [
        (prompt > literal_column(str(int(t))), literal_column(str(int(t)))) for t in sorted(thresholds, reverse=True)
    ]
    return case(*whens, else_=literal_column("0")) if whens else literal_column("0")


def ledger_groups(engine: Engine, selection: Selection, thresholds: Sequence[int]) -> list[LedgerGroup]:
    """Every usage row of the selection, summed per (task type, model, purpose, tier, day, geo, band).

    ``thresholds``: the price table's long-prompt thresholds, the band keys rows are grouped by.
    """
    # The UTC day a row was billed (``billed_at``; rows from before it was recorded: ``created_at``).
    day = utc_day(engine, func.coalesce(col(UsageRecord.billed_at), col(UsageRecord.created_at)))
    band = _band(thresholds)
    keys = (col(Task.task_type), col(UsageRecord.model), col(UsageRecord.purpose), col(UsageRecord.service_tier), day,
            col(UsageRecord.inference_geo), band)  # fmt: skip
    stmt = (
        select(
            *keys,
            func.count(),
            *TOKEN_SUMS,
            func.sum(col(UsageRecord.cost_pusd)),
            func.count(col(UsageRecord.cost_pusd)),
        )
        .select_from(UsageRecord)
        .outerjoin(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(*selection.usage_filter())
        .group_by(*keys)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        LedgerGroup(
            task_type=task_type,
            model=model,
            purpose=str(purpose),
            service_tier=str(tier),
            day=date.fromisoformat(day_text),
            responses=int(count),
            usage=usage_of(row[8:13]),
            cost_pusd=as_int(row[13]),
            unpriced=int(count) - as_int(row[14]),
            inference_geo=geo,
            long_prompt=as_int(band_key),
        )
        for row in rows
        for task_type, model, purpose, tier, day_text, geo, band_key, count in [row[:8]]
    ]


def daily_model_costs(engine: Engine, first: date, last: date) -> list[DayModelCost]:
    """Cost per (UTC day, model) of every usage row billed from ``first`` to ``last`` inclusive."""
    day = utc_day(engine, col(UsageRecord.created_at))
    stmt = (
        select(
            day,
            col(UsageRecord.model),
            func.sum(col(UsageRecord.cost_pusd)),
            func.count() - func.count(col(UsageRecord.cost_pusd)),
        )
        .where(
            col(UsageRecord.created_at) >= midnight(first),
            col(UsageRecord.created_at) < midnight(last + timedelta(days=1)),
        )
        .group_by(day, col(UsageRecord.model))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return sorted(
        DayModelCost(date.fromisoformat(d), model, as_int(cost), as_int(unpriced)) for d, model, cost, unpriced in rows
    )


def price_versions(engine: Engine, selection: Selection) -> list[str]:
    """The price-table versions the selection's recorded costs were computed with."""
    stmt = select(col(UsageRecord.price_version)).where(*selection.usage_filter()).distinct()
    with engine.connect() as conn:
        return sorted(str(v) for v in conn.execute(stmt).scalars())


def thinking_tokens(engine: Engine, selection: Selection) -> int:
    """Output tokens the selection's responses spent thinking."""
    stmt = select(func.sum(col(UsageRecord.thinking_tokens))).where(*selection.usage_filter())
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one() or 0)


def unpriced_by_model(engine: Engine, run_ids: Sequence[int]) -> dict[str, int]:
    """Billed responses of the runs ``run_ids`` with no cost (their model had no price row), by model."""
    stmt = (
        select(col(UsageRecord.model), func.count())
        .where(col(UsageRecord.run_id).in_(list(run_ids)), col(UsageRecord.cost_pusd).is_(None))
        .group_by(col(UsageRecord.model))
    )
    with engine.connect() as conn:
        return {str(model): int(count) for model, count in conn.execute(stmt).all()}
