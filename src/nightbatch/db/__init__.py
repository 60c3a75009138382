"""The database port: tables, engines, migrations and every SQL statement nightbatch runs.

SQLModel tables live only in :mod:`nightbatch.db.models`. Stages hold an :class:`Engine` (re-exported here so
they need not import SQLAlchemy) and call the named reads and state transitions of the ``db`` modules, each
named after the state it owns.
"""

from __future__ import annotations

from nightbatch.db.engine import (
    Connection,
    Engine,
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
    "Connection",
    "Engine",
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
