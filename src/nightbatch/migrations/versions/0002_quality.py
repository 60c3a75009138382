"""Quality gates: task attempts, calibrations, the escalation route, batch purpose.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

``batch.purpose`` gets a server default so existing rows (all routine batches) become ``task``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calibration",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("results", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("recommended_model", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration")),
    )
    with op.batch_alter_table("calibration", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calibration_task_type"), ["task_type"], unique=False)

    op.create_table(
        "task_attempt",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("custom_id", sa.String(length=64), nullable=True),
        sa.Column("calibration_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("result_type", sa.String(length=16), nullable=False),
        sa.Column("check_passed", sa.Boolean(), nullable=True),
        sa.Column("check_reason", sa.Text(), nullable=True),
        sa.Column("output", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_task_attempt_batch_id_batch")),
        sa.ForeignKeyConstraint(
            ["calibration_id"], ["calibration.id"], name=op.f("fk_task_attempt_calibration_id_calibration")
        ),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_task_attempt_task_id_task")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_attempt")),
        sa.UniqueConstraint("batch_id", "custom_id", name="uq_task_attempt_batch_id_custom_id"),
    )
    with op.batch_alter_table("task_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_attempt_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_attempt_calibration_id"), ["calibration_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_attempt_task_id"), ["task_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_attempt_task_type"), ["task_type"], unique=False)

    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.String(length=16), nullable=False, server_default="task"))
        batch_op.create_index(batch_op.f("ix_batch_purpose"), ["purpose"], unique=False)

    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("route_model", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("route_model")

    with op.batch_alter_table("batch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_purpose"))
        batch_op.drop_column("purpose")

    with op.batch_alter_table("task_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_attempt_task_type"))
        batch_op.drop_index(batch_op.f("ix_task_attempt_task_id"))
        batch_op.drop_index(batch_op.f("ix_task_attempt_calibration_id"))
        batch_op.drop_index(batch_op.f("ix_task_attempt_batch_id"))

    op.drop_table("task_attempt")
    with op.batch_alter_table("calibration", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calibration_task_type"))

    op.drop_table("calibration")
