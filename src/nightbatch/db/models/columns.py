"""How every table stores its values: the one metadata and its constraint names, column types and length limits.

Types are portable (SQLite and PostgreSQL):

* ids and money are 64-bit integers (``BIGINT``; on SQLite ``INTEGER PRIMARY KEY`` so rowids autoincrement);
* status columns are ``VARCHAR`` holding the value of a :class:`enum.StrEnum` (no native PostgreSQL enums,
  so adding a status is a one-line code change, not a migration);
* JSON columns are :class:`sqlalchemy.JSON`; nullable ones store Python ``None`` as SQL ``NULL``;
* timestamps are timezone-aware UTC :class:`~datetime.datetime` in and out, on both databases
  (:class:`UTCDateTime`); naive datetimes are refused.

Every table module imports this one, so the naming convention below is set before any table is defined.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, String
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import SQLModel

__all__ = [
    "CUSTOM_ID_MAX_LENGTH",
    "KEY_MAX_LENGTH",
    "MODEL_MAX_LENGTH",
    "TASK_TYPE_MAX_LENGTH",
    "WORKER_MAX_LENGTH",
    "StrEnumType",
    "UTCDateTime",
    "id_type",
    "json_type",
    "metadata",
    "utcnow",
]

TASK_TYPE_MAX_LENGTH = 64
KEY_MAX_LENGTH = 200
MODEL_MAX_LENGTH = 100
CUSTOM_ID_MAX_LENGTH = 64  # the Message Batches API's limit
WORKER_MAX_LENGTH = 128

# Deterministic constraint names, so later migrations (and SQLite batch mode) can refer to them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = SQLModel.metadata


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones: the value is converted to UTC, stored
    without an offset, and UTC is re-attached on the way out. Naive datetimes are refused rather than
    guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware one, e.g. nightbatch.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnumType(TypeDecorator[StrEnum]):
    """A :class:`StrEnum` stored as its value in a ``VARCHAR`` (not a native enum type)."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[StrEnum], length: int = 16) -> None:
        super().__init__(length)
        self.enum_class = enum_class

    def process_bind_param(self, value: StrEnum | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_class(value).value  # a ValueError names a value that is not a member

    def process_result_value(self, value: str | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum_class(value)


def id_type() -> TypeEngine[int]:
    """The type of every id column (a primary key or a foreign key to one)."""
    # BIGINT everywhere except SQLite, where only "INTEGER PRIMARY KEY" is an autoincrementing rowid alias.
    return BigInteger().with_variant(Integer(), "sqlite")


def json_type(nullable: bool = False) -> JSON:
    """A JSON column's type; a ``nullable`` one stores Python ``None`` as SQL ``NULL`` (not JSON ``null``)."""
    return JSON(none_as_null=nullable)
