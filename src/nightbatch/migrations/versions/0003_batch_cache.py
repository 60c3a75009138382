"""Batch caching: the ``cache_entry`` table (pilot batches, known live entries) and ``batch.cache_role``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cache_entry",
        sa.Column("id", _ID, nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("prefix_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("ttl", sa.String(length=8), nullable=True),
        sa.Column("pilot_batch_id", _ID, nullable=True),
        sa.Column("pilot_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pilot_failures", sa.Integer(), nullable=False),
        sa.Column("prefix_tokens", sa.Integer(), nullable=True),
        sa.Column("last_write_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["pilot_batch_id"], ["batch.id"], name=op.f("fk_cache_entry_pilot_batch_id_batch")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_entry")),
        sa.UniqueConstraint("model", "prefix_hash", name="uq_cache_entry_model_prefix_hash"),
    )
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cache_role", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.drop_column("cache_role")
    op.drop_table("cache_entry")
