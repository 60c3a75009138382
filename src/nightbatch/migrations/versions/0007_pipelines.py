"""Multi-stage pipelines, de-duplication and response reuse: three new tables, no change to existing ones.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

``task_stage``: which upstream task's result enqueued a stage task (and its pipeline item);
``task_twin``: a task served by another task's request (de-duplicated in one submit, or reused);
``request_digest``: the digest of a request of a type with ``reuse_responses``, to find it again; and a
partial index on the deadline fallback's usage rows (their stage tasks are made at the next submit).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "task_stage",
        sa.Column("id", ID, nullable=False),
        sa.Column("task_id", ID, nullable=False),
        sa.Column("upstream_task_id", ID, nullable=False),
        sa.Column("root_task_id", ID, nullable=False),
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_task_stage_task_id_task")),
        sa.ForeignKeyConstraint(["upstream_task_id"], ["task.id"], name=op.f("fk_task_stage_upstream_task_id_task")),
        sa.ForeignKeyConstraint(["root_task_id"], ["task.id"], name=op.f("fk_task_stage_root_task_id_task")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_stage")),
        sa.UniqueConstraint("task_id", name=op.f("uq_task_stage_task_id")),
        sa.UniqueConstraint("upstream_task_id", "stage", name="uq_task_stage_upstream_task_id_stage"),
    )
    op.create_index(op.f("ix_task_stage_upstream_task_id"), "task_stage", ["upstream_task_id"])
    op.create_index(op.f("ix_task_stage_root_task_id"), "task_stage", ["root_task_id"])
    op.create_index(op.f("ix_task_stage_pipeline"), "task_stage", ["pipeline"])
    op.create_table(
        "task_twin",
        sa.Column("id", ID, nullable=False),
        sa.Column("task_id", ID, nullable=False),
        sa.Column("leader_task_id", ID, nullable=False),
        sa.Column("batch_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_task_twin_task_id_task")),
        sa.ForeignKeyConstraint(["leader_task_id"], ["task.id"], name=op.f("fk_task_twin_leader_task_id_task")),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_task_twin_batch_id_batch")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_twin")),
        sa.UniqueConstraint("task_id", "batch_id", name="uq_task_twin_task_id_batch_id"),
    )
    op.create_index(op.f("ix_task_twin_task_id"), "task_twin", ["task_id"])
    op.create_index(op.f("ix_task_twin_leader_task_id"), "task_twin", ["leader_task_id"])
    op.create_index(op.f("ix_task_twin_batch_id"), "task_twin", ["batch_id"])
    op.create_table(
        "request_digest",
        sa.Column("id", ID, nullable=False),
        sa.Column("task_id", ID, nullable=False),
        sa.Column("batch_id", ID, nullable=False),
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name=op.f("fk_request_digest_task_id_task")),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_request_digest_batch_id_batch")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_digest")),
        sa.UniqueConstraint("task_id", "batch_id", name="uq_request_digest_task_id_batch_id"),
    )
    op.create_index(op.f("ix_request_digest_digest"), "request_digest", ["digest"])
    fallback_only = sa.text("purpose = 'fallback'")
    op.create_index(
        "ix_usage_record_fallback_created_at",
        "usage_record",
        ["created_at"],
        postgresql_where=fallback_only,
        sqlite_where=fallback_only,
    )


def downgrade() -> None:
    op.drop_index("ix_usage_record_fallback_created_at", table_name="usage_record")
    op.drop_index(op.f("ix_request_digest_digest"), table_name="request_digest")
    op.drop_table("request_digest")
    for index in ("batch_id", "leader_task_id", "task_id"):
        op.drop_index(op.f(f"ix_task_twin_{index}"), table_name="task_twin")
    op.drop_table("task_twin")
    for index in ("pipeline", "root_task_id", "upstream_task_id"):
        op.drop_index(op.f(f"ix_task_stage_{index}"), table_name="task_stage")
    op.drop_table("task_stage")
