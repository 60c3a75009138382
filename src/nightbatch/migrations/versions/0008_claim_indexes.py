"""Claim in index order: a partial index on the queued tasks' claim order, one on unsent claims.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

The claim (``nightbatch.db.tasks.claim_tasks``) used to sort every claimable row to take the first n: 1.3 s
per claim at a million queued tasks on PostgreSQL. It now takes the queued tasks and the lapsed leases apart,
each from its own partial index, and merges the two short lists. ``ix_task_claim`` stays: the status counts
of ``nightbatch status`` and the reports read it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

QUEUED_ONLY = sa.text("status = 'queued'")
UNSENT_CLAIMS = sa.text("status = 'claimed' AND batch_id IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_task_queued_claim_order",
        "task",
        [sa.text("priority DESC"), sa.text("(deadline IS NULL)"), "deadline", "id"],
        postgresql_where=QUEUED_ONLY,
        sqlite_where=QUEUED_ONLY,
    )
    op.create_index(
        "ix_task_unsent_claims", "task", ["claimed_at"], postgresql_where=UNSENT_CLAIMS, sqlite_where=UNSENT_CLAIMS
    )


def downgrade() -> None:
    op.drop_index("ix_task_unsent_claims", table_name="task")
    op.drop_index("ix_task_queued_claim_order", table_name="task")
