"""Reliability: the installation id, claims without a send (poison rule), who runs a run.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

``task.claims`` gets a server default so existing rows start at 0. The installation id itself is not
written here: it is made on first use (``nightbatch.installation``), so a copied database template or a
restored backup of another installation is not an issue the migration can see.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("installation_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claims", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hostname", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("pid")
        batch_op.drop_column("hostname")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("claims")
    op.drop_table("installation")
