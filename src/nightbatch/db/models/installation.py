"""This database's identity: the installation id every custom_id it sends carries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlmodel import Field, SQLModel

from nightbatch.db.models.columns import UTCDateTime, utcnow

__all__ = ["Installation"]


class Installation(SQLModel, table=True):
    """This database's installation id, made once (row ``id = 1``) and carried in every custom_id we send.

    Two installations sharing one API workspace tell their batches apart by it (see
    :mod:`nightbatch.custom_ids` and :mod:`nightbatch.submit.reconcile`).
    """

    __tablename__ = "installation"

    id: int = Field(default=1, primary_key=True, sa_type=Integer())
    installation_id: str = Field(sa_type=String(16))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
