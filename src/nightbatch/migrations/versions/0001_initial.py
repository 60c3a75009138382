"""Initial schema: run, batch, task, usage_record.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Types are written out literally (never imported from nightbatch) so this file keeps meaning the same
thing however the models change later. ``ID`` is BIGINT, except on SQLite where only ``INTEGER PRIMARY
KEY`` autoincrements. Status columns are VARCHARs holding StrEnum values (no native enums).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "run",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("started_at", nullable=False),
        _ts("ended_at"),
        sa.Column("totals", sa.JSON(none_as_null=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run")),
    )
    op.create_index(op.f("ix_run_kind"), "run", ["kind"])

    op.create_table(
        "batch",
        sa.Column("id", ID, nullable=False),
        sa.Column("provider_batch_id", sa.String(length=128), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_count", sa.Integer(), nullable=False),
        sa.Column("payload_bytes", sa.BigInteger(), nullable=False),
        sa.Column("prefix_hash", sa.String(length=64), nullable=True),
        sa.Column("cache_ttl", sa.String(length=8), nullable=True),
        sa.Column("cache_decision", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("processing_count", sa.Integer(), nullable=False),
        sa.Column("succeeded_count", sa.Integer(), nullable=False),
        sa.Column("errored_count", sa.Integer(), nullable=False),
        sa.Column("canceled_count", sa.Integer(), nullable=False),
        sa.Column("expired_count", sa.Integer(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("submitted_at"),
        _ts("ended_at"),
        _ts("expires_at"),
        _ts("ingested_at"),
        sa.Column("manifest_uri", sa.Text(), nullable=True),
        sa.Column("results_uri", sa.Text(), nullable=True),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        _ts("claimed_at"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_batch_run_id_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch")),
        sa.UniqueConstraint("provider_batch_id", name=op.f("uq_batch_provider_batch_id")),
    )
    op.create_index(op.f("ix_batch_run_id"), "batch", ["run_id"])
    op.create_index(op.f("ix_batch_status"), "batch", ["status"])

    op.create_table(
        "task",
        sa.Column("id", ID, nullable=False),
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("model_override", sa.String(length=100), nullable=True),
        sa.Column("batch_id", ID, nullable=True),
        sa.Column("custom_id", sa.String(length=64), nullable=True),
        sa.Column("error_type", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("output_uri", sa.Text(), nullable=True),
        sa.Column("output_line", sa.Integer(), nullable=True),
        sa.Column("output_inline", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        _ts("deadline"),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        _ts("claimed_at"),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("user_canceled", sa.Boolean(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_task_batch_id_batch")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task")),
        sa.UniqueConstraint("batch_id", "custom_id", name="uq_task_batch_id_custom_id"),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_task_idempotency_key")),
    )
    op.create_index(op.f("ix_task_batch_id"), "task", ["batch_id"])
    op.create_index("ix_task_claim", "task", ["status", "priority", "id"])
    op.create_index(op.f("ix_task_custom_id"), "task", ["custom_id"])
    op.create_index(op.f("ix_task_task_type"), "task", ["task_type"])

    op.create_table(
        "usage_record",
        sa.Column("id", ID, nullable=False),
        sa.Column("task_id", ID, nullable=True),
        sa.Column("batch_id", ID, nullable=True),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("response_id", sa.String(length=128), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("service_tier", sa.String(length=16), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_5m_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_1h_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), nullable=False),
        sa.Column("price_version", sa.String(length=64), nullable=False),
        sa.Column("cost_pusd", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        _ts("created_at", nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_usage_record_batch_id_batch")),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_usage_record_run_id_run")),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_usage_record_task_id_task")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_record")),
        sa.UniqueConstraint("response_id", name=op.f("uq_usage_record_response_id")),
        sa.UniqueConstraint("task_id", "batch_id", "purpose", name="uq_usage_record_task_batch_purpose"),
    )
    op.create_index(op.f("ix_usage_record_batch_id"), "usage_record", ["batch_id"])
    op.create_index(op.f("ix_usage_record_run_id"), "usage_record", ["run_id"])
    op.create_index(op.f("ix_usage_record_task_id"), "usage_record", ["task_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes; children before parents for the foreign keys.
    op.drop_table("usage_record")
    op.drop_table("task")
    op.drop_table("batch")
    op.drop_table("run")
