"""The states and kinds the tables' status columns hold, each stored as its value (see ``columns.StrEnumType``)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BatchStatus",
    "CacheRole",
    "CacheState",
    "RunStatus",
    "ServiceTier",
    "TaskStatus",
    "TwinKind",
    "UsagePurpose",
]


class TaskStatus(StrEnum):
    """Where a task is in its life: ``queued -> claimed -> submitted -> succeeded | failed``."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class BatchStatus(StrEnum):
    """Where a batch is: ``pending`` means our row and manifest exist but the API's create is unconfirmed."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    CANCELING = "canceling"
    ENDED = "ended"
    INGESTED = "ingested"
    CREATE_FAILED = "create_failed"
    ORPHANED = "orphaned"


class ServiceTier(StrEnum):
    """How a response was billed: the Batches API (half price) or a synchronous call."""

    BATCH = "batch"
    STANDARD = "standard"


class UsagePurpose(StrEnum):
    """Why a billed request was made."""

    TASK = "task"
    PRIMING = "priming"
    CALIBRATION = "calibration"
    SHADOW = "shadow"
    ORPHAN = "orphan"  # billed by a batch no task pointed at any more (reported; see submit.submitter)
    FALLBACK = "fallback"  # a task sent real-time because its batch would miss the deadline (nightbatch.deadline)


class CacheState(StrEnum):
    """What is known of a prefix group's entry in the provider's batch cache (see ``db.cache_entries``)."""

    PILOT_RUNNING = "pilot_running"  # a one-task pilot batch is writing it; the group's other tasks wait
    WARM = "warm"  # a batch item wrote or read it; alive until ``expires_at`` (a conservative bound)
    COLD = "cold"  # nothing alive known (a pilot that wrote nothing, or an entry past its expiry)


class CacheRole(StrEnum):
    """A batch's part in its prefix group's caching; NULL when its requests carry no breakpoint."""

    PILOT = "pilot"  # one task writing the group's prefix into the batch cache
    FANOUT = "fanout"  # the rest of the group, reading it


class RunStatus(StrEnum):
    """How an orchestrator run ended (``running`` while it has not)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"  # its process died without finishing it (closed by a later run or collect)


class TwinKind(StrEnum):
    """How a task was answered without a request of its own."""

    DEDUP = "dedup"  # an identical request of the same submit went out once; this task shares its result
    REUSE = "reuse"  # an identical request answered within the type's ``reuse_responses`` window
