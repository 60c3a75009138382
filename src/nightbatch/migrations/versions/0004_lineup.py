"""The current lineup in the ledger: unpriced responses, thinking tokens, inference geo, billing time.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-29

``usage_record.cost_pusd`` becomes nullable: a response whose model has no price row is booked with a
NULL cost (unpriced, reported loudly), never as $0. ``thinking_tokens`` (the part of ``output_tokens``
spent thinking) defaults to 0 for existing rows (the 4.x models did not think unless asked).
``inference_geo`` and ``billed_at`` are NULL for existing rows (unknown).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_record", schema=None) as batch_op:
        batch_op.alter_column("cost_pusd", existing_type=sa.BigInteger(), nullable=True)
        batch_op.add_column(sa.Column("thinking_tokens", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("inference_geo", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("billed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # An unpriced row cannot go back to a NOT NULL cost without inventing one: refuse rather than book $0.
    bind = op.get_bind()
    unpriced = bind.execute(sa.text("SELECT COUNT(*) FROM usage_record WHERE cost_pusd IS NULL")).scalar_one()
    if unpriced:
        raise RuntimeError(f"{unpriced} unpriced usage rows (cost_pusd NULL): price them before downgrading")
    with op.batch_alter_table("usage_record", schema=None) as batch_op:
        batch_op.drop_column("billed_at")
        batch_op.drop_column("inference_geo")
        batch_op.drop_column("thinking_tokens")
        batch_op.alter_column("cost_pusd", existing_type=sa.BigInteger(), nullable=False)
