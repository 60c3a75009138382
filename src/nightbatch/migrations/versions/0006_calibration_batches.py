"""A calibration's batches name it in their own column, not inside ``cache_decision``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Calibration batches used to carry ``{"calibration_id": N}`` as their ``cache_decision``; the upgrade copies
that id into ``batch.calibration_id`` and clears the marker, the downgrade puts it back.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_batch = sa.table(
    "batch",
    sa.column("id", ID),
    sa.column("purpose", sa.String(16)),
    sa.column("cache_decision", sa.JSON()),
    sa.column("calibration_id", ID),
)


def _marker(value: object) -> int | None:
    if isinstance(value, str):  # SQLite's JSON comes back as text through a lightweight table()
        value = json.loads(value)
    if isinstance(value, dict) and isinstance(value.get("calibration_id"), int):
        return int(value["calibration_id"])
    return None


def upgrade() -> None:
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calibration_id", ID, nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_batch_calibration_id_calibration"), "calibration", ["calibration_id"], ["id"]
        )
        batch_op.create_index(op.f("ix_batch_calibration_id"), ["calibration_id"])
    conn = op.get_bind()
    rows = conn.execute(sa.select(_batch.c.id, _batch.c.cache_decision).where(_batch.c.purpose == "calibration"))
    for batch_id, decision in rows.all():
        calibration_id = _marker(decision)
        if calibration_id is not None:
            conn.execute(
                _batch.update()
                .where(_batch.c.id == batch_id)
                .values(calibration_id=calibration_id, cache_decision=sa.null())
            )


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_batch.c.id, _batch.c.calibration_id).where(_batch.c.calibration_id.is_not(None)))
    for batch_id, calibration_id in rows.all():
        conn.execute(
            _batch.update().where(_batch.c.id == batch_id).values(cache_decision={"calibration_id": calibration_id})
        )
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_batch_calibration_id"))
        batch_op.drop_constraint(op.f("fk_batch_calibration_id_calibration"), type_="foreignkey")
        batch_op.drop_column("calibration_id")
