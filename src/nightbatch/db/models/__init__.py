"""The database tables: what nightbatch must remember to be exactly-once and auditable.

Every SQLModel table lives in this package and nowhere else; import its names from here. Importing the
package, or any module in it, registers every table in the one :data:`metadata` (alembic's target and the
migrations' drift check), because this module imports them all:

* :mod:`~nightbatch.db.models.columns`: the metadata and its constraint names, the portable column types
  (:class:`UTCDateTime`, :class:`StrEnumType`, 64-bit ids, JSON), length limits, :func:`utcnow`;
* :mod:`~nightbatch.db.models.enums`: the values of every status and kind column;
* :mod:`~nightbatch.db.models.queue`: ``run``, ``batch``, ``task`` and the claim's partial indexes;
* :mod:`~nightbatch.db.models.ledger`: ``usage_record`` (money, exact in picodollars) and ``task_attempt``;
* :mod:`~nightbatch.db.models.installation`, :mod:`~nightbatch.db.models.calibration`,
  :mod:`~nightbatch.db.models.cache`: ``installation``, ``calibration``, ``cache_entry``;
* :mod:`~nightbatch.db.models.pipeline`: ``task_stage``, ``task_twin``, ``request_digest``.
"""

from __future__ import annotations

from nightbatch.db.models.columns import (
    CUSTOM_ID_MAX_LENGTH,
    KEY_MAX_LENGTH,
    MODEL_MAX_LENGTH,
    TASK_TYPE_MAX_LENGTH,
    WORKER_MAX_LENGTH,
    StrEnumType,
    UTCDateTime,
    metadata,
    utcnow,
)
from nightbatch.db.models.enums import (
    BatchStatus,
    CacheRole,
    CacheState,
    RunStatus,
    ServiceTier,
    TaskStatus,
    TwinKind,
    UsagePurpose,
)

# The table modules in the order their tables were first defined, so metadata.tables keeps that order.
# isort: off
from nightbatch.db.models.queue import Batch, Run, Task
from nightbatch.db.models.ledger import TaskAttempt, UsageRecord
from nightbatch.db.models.installation import Installation
from nightbatch.db.models.calibration import Calibration
from nightbatch.db.models.cache import CacheEntry
from nightbatch.db.models.pipeline import RequestDigest, TaskStage, TaskTwin
# isort: on

__all__ = [
    "CUSTOM_ID_MAX_LENGTH",
    "KEY_MAX_LENGTH",
    "MODEL_MAX_LENGTH",
    "TASK_TYPE_MAX_LENGTH",
    "WORKER_MAX_LENGTH",
    "Batch",
    "BatchStatus",
    "CacheEntry",
    "CacheRole",
    "CacheState",
    "Calibration",
    "Installation",
    "RequestDigest",
    "Run",
    "RunStatus",
    "ServiceTier",
    "StrEnumType",
    "Task",
    "TaskAttempt",
    "TaskStage",
    "TaskStatus",
    "TaskTwin",
    "TwinKind",
    "UTCDateTime",
    "UsagePurpose",
    "UsageRecord",
    "metadata",
    "utcnow",
]
