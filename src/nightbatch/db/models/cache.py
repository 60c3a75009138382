"""The batch-cache table: what the results have shown of each prefix group's entry in the provider's cache."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from nightbatch.db.models.columns import MODEL_MAX_LENGTH, StrEnumType, UTCDateTime, id_type, utcnow
from nightbatch.db.models.enums import CacheState

__all__ = ["CacheEntry"]


class CacheEntry(SQLModel, table=True):
    """One prefix group's entry in the provider's *batch* cache, as far as the results have shown it.

    The database serves one workspace (one API key), and cache entries are per workspace, so the key is
    (model, prefix hash). ``pilot_running`` is the waiting state of the group: its other tasks stay queued
    until the collect side ingests the pilot batch and moves the row to ``warm`` (or ``cold``).
    """

    __tablename__ = "cache_entry"
    __table_args__ = (UniqueConstraint("model", "prefix_hash", name="uq_cache_entry_model_prefix_hash"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=id_type())
    model: str = Field(sa_type=String(MODEL_MAX_LENGTH))
    prefix_hash: str = Field(sa_type=String(64))
    state: CacheState = Field(default=CacheState.COLD, sa_type=StrEnumType(CacheState))
    ttl: str | None = Field(default=None, sa_type=String(8))
    pilot_batch_id: int | None = Field(default=None, foreign_key="batch.id", sa_type=id_type())
    pilot_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    pilot_failures: int = Field(default=0, sa_type=Integer())
    prefix_tokens: int | None = Field(default=None, sa_type=Integer())
    last_write_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_read_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
