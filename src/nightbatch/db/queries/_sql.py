"""SQL fragments the read queries share: UTC day keys and sums that are NULL over no rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, literal_column
from sqlmodel import col

from nightbatch.db.models import UsageRecord
from nightbatch.pricing import Usage

__all__ = ["TOKEN_SUMS", "as_int", "usage_of", "utc_day"]


def utc_day(engine: Engine, column: Any) -> ColumnElement[Any]:
    """``column`` (a timestamp) as a ``YYYY-MM-DD`` UTC day string, in SQL.

    Literal (not bound) format arguments: PostgreSQL only matches a GROUP BY expression to the selected
    one when the two are textually identical, and two bound parameters are not.
    """
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column("'YYYY-MM-DD'"))
    return func.strftime(literal_column("'%Y-%m-%d'"), column)  # SQLite stores UTC without an offset


def as_int(value: Any) -> int:
    return int(value or 0)  # SUM over BIGINT is NUMERIC (a Decimal) on PostgreSQL, NULL over no rows


TOKEN_SUMS = (
    func.sum(col(UsageRecord.input_tokens)),
    func.sum(col(UsageRecord.output_tokens)),
    func.sum(col(UsageRecord.cache_write_5m_tokens)),
    func.sum(col(UsageRecord.cache_write_1h_tokens)),
    func.sum(col(UsageRecord.cache_read_tokens)),
)
"""The five token sums of :class:`~nightbatch.pricing.Usage`, in its field order."""


def usage_of(sums: Sequence[Any]) -> Usage:
    """A :class:`Usage` from the five :data:`TOKEN_SUMS` of a row."""
    inp, out, w5, w1, read = (as_int(v) for v in sums)
    return Usage(
        input_tokens=inp, output_tokens=out, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1, cache_read_tokens=read
    )
