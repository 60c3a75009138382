"""The database port: tables, engines and sessions, and migrations.

SQLModel tables live only in :mod:`nightbatch.db.models`. Everything else in nightbatch goes through
:func:`make_engine` / :func:`session_scope` and keeps the schema current with :func:`upgrade`.
"""

from __future__ import annotations

from nightbatch.db.engine import (
    dialect_name,
    insert_ignoring_conflicts,
    make_engine,
    normalize_url,
    redact_url,
    session_scope,
)
from nightbatch.db.migrate import current_revision, downgrade, head_revision, require_current, upgrade
from nightbatch.db.models import (
    Batch,
    BatchStatus,
    Calibration,
    Run,
    RunStatus,
    ServiceTier,
    Task,
    TaskAttempt,
    TaskStatus,
    UsagePurpose,
    UsageRecord,
    metadata,
    utcnow,
)

__all__ = [
    "Batch",
    "BatchStatus",
    "Calibration",
    "Run",
    "RunStatus",
    "ServiceTier",
    "Task",
    "TaskAttempt",
    "TaskStatus",
    "UsagePurpose",
    "UsageRecord",
    "current_revision",
    "dialect_name",
    "downgrade",
    "head_revision",
    "insert_ignoring_conflicts",
    "make_engine",
    "metadata",
    "normalize_url",
    "redact_url",
    "require_current",
    "session_scope",
    "upgrade",
    "utcnow",
]
