"""The ledger: the one writer of ``usage_record`` (what each billed response cost) and ``task_attempt`` rows.

Rows are appended, never changed: a :class:`UsageRow` per billed response, an :class:`AttemptRow` per result
(a routine attempt, a shadow request, a calibration probe, a real-time answer). Ingest appends thousands per
chunk through :class:`LedgerStatements` (its hot path, driven by :mod:`nightbatch.db.ingest_writes`); the
real-time fallback and anything else that bills one response at a time call :func:`append`, which runs the
same statements.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Dialect

from nightbatch.db.bulk import Bulk, Columns, bulk_insert, row_timestamp
from nightbatch.db.models import ServiceTier, UsagePurpose

__all__ = ["AttemptRow", "LedgerStatements", "UsageRow", "append", "json_text"]

# The rows are NamedTuples, not frozen dataclasses: ingest builds three rows a result, and a frozen slots
# dataclass took ~2.4 us to build against ~1 us (keywords) for a NamedTuple, with orjson then serializing it
# field by field. Measured on 20k results (process CPU of ingest_batch): frozen dataclass rows cost 9-12% over
# the old dicts; NamedTuples sent to PostgreSQL as arrays, ~3%. Immutable and typed all the same.


class UsageRow(NamedTuple):
    """One billed response: its tokens and exact cost (``cost_pusd`` None: unpriced, never $0)."""

    task_id: int | None
    batch_id: int | None
    run_id: int | None
    model: str
    service_tier: ServiceTier | str
    input_tokens: int
    output_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    cache_read_tokens: int
    price_version: str
    cost_pusd: int | None
    purpose: UsagePurpose
    thinking_tokens: int
    inference_geo: str | None
    # When it was billed. Ingest gives it as its statements carry it (:func:`row_timestamp`, once per batch).
    billed_at: datetime | str | None
    response_id: str | None = None  # a real-time answer's message id (batch results are not booked by it)


class AttemptRow(NamedTuple):
    """One result for one task from one model."""

    task_id: int
    task_type: str
    attempt: int
    model: str
    purpose: UsagePurpose
    batch_id: int | None
    custom_id: str | None
    calibration_id: int | None
    result_type: str
    check_passed: bool | None
    check_reason: str | None
    output: str | None  # JSON text, as the JSON column stores it (see json_text); None: not kept


def json_text(value: Any) -> str | None:
    """``value`` as :class:`AttemptRow` carries an output: exactly what SQLAlchemy's JSON type would store."""
    return None if value is None else json.dumps(value)


# Each column: (name, the row's field, PostgreSQL type); every row's created_at is the one ``now`` given.
_USAGE_COLUMNS: Columns = tuple((c, c, t) for c, t in (
    ("task_id", "bigint"), ("batch_id", "bigint"), ("run_id", "bigint"), ("model", "text"),
    ("service_tier", "text"), ("input_tokens", "integer"), ("output_tokens", "integer"),
    ("cache_write_5m_tokens", "integer"), ("cache_write_1h_tokens", "integer"), ("cache_read_tokens", "integer"),
    ("price_version", "text"), ("cost_pusd", "bigint"), ("purpose", "text"), ("thinking_tokens", "integer"),
    ("inference_geo", "text"), ("billed_at", "timestamptz"),
))  # fmt: skip
_ATTEMPT_COLUMNS: Columns = tuple((c, c, t) for c, t in (
    ("task_id", "bigint"), ("task_type", "text"), ("attempt", "integer"), ("model", "text"), ("purpose", "text"),
    ("batch_id", "bigint"), ("custom_id", "text"), ("calibration_id", "bigint"), ("result_type", "text"),
    ("check_passed", "boolean"), ("check_reason", "text"), ("output", "json"),
))  # fmt: skip
_RESPONSE_ID: Columns = (("response_id", "response_id", "text"),)


@dataclass(frozen=True)
class LedgerStatements:
    """The ledger's bulk inserts for one dialect."""

    usage: Bulk
    attempts: Bulk
    usage_with_response: Bulk  # one response at a time (the real-time fallback), booked by its message id

    @classmethod
    def of(cls, dialect: Dialect) -> LedgerStatements:
        return cls(
            bulk_insert(dialect.name, "usage_record", _USAGE_COLUMNS),
            bulk_insert(dialect.name, "task_attempt", _ATTEMPT_COLUMNS),
            bulk_insert(dialect.name, "usage_record", _USAGE_COLUMNS + _RESPONSE_ID),
        )


def append(
    conn: Connection, *, usage: Sequence[UsageRow] = (), attempts: Sequence[AttemptRow] = (), now: datetime
) -> None:
    """Append a few rows in the caller's transaction (created at ``now``); ingest's chunks go the bulk way."""
    statements = LedgerStatements.of(conn.dialect)
    stamped = [u._replace(billed_at=_stamp(conn.dialect, u.billed_at)) for u in usage]
    statements.usage_with_response.run(conn, stamped, now)
    statements.attempts.run(conn, list(attempts), now)


def _stamp(dialect: Dialect, value: datetime | str | None) -> datetime | str | None:
    return row_timestamp(dialect, value) if isinstance(value, datetime) else value
