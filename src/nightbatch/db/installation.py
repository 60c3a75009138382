"""This database's installation id: made once, on first use, kept in the ``installation`` table.

It is written with ``INSERT ... ON CONFLICT DO NOTHING`` on the single row ``id = 1`` and read back, so
concurrent first uses agree on one id. It is not made by the migration: a database copied from another
(a restored backup used as staging, a test template) would otherwise share its id; delete the row to
give such a copy its own id (only while it has no batch in flight).
"""

from __future__ import annotations

from sqlalchemy import Engine, Table, select

from nightbatch.custom_ids import new_installation_id
from nightbatch.db.engine import insert_ignoring_conflicts
from nightbatch.db.models import metadata, utcnow

__all__ = ["installation_id"]

_INSTALLATION: Table = metadata.tables["installation"]


def installation_id(engine: Engine) -> str:
    """The installation id of the database behind ``engine`` (made now if it has none yet)."""
    with engine.connect() as conn:
        found = conn.execute(select(_INSTALLATION.c.installation_id).where(_INSTALLATION.c.id == 1)).scalar()
    if found is not None:
        return str(found)
    with engine.begin() as conn:
        conn.execute(
            insert_ignoring_conflicts(_INSTALLATION, conn.dialect.name, ["id"]).values(
                id=1, installation_id=new_installation_id(), created_at=utcnow()
            )
        )
        return str(conn.execute(select(_INSTALLATION.c.installation_id).where(_INSTALLATION.c.id == 1)).scalar_one())
