"""Message Batch records and their lifecycle in simulated time.

A batch is processed in *waves*: after ``start_delay`` seconds, every ``wave_seconds`` the next
``concurrency`` requests (in submission order) are processed together. A wave only starts if it can
finish before ``expires_at`` (created + 24 h); whatever is left then ends ``expired``. ``cancel``
moves the batch to ``canceling``: requests not yet started end ``canceled`` and the batch ends once
the in-flight wave has finished and ``cancel_delay`` has passed. Until the batch ends,
``request_counts`` shows every request as ``processing``; the final split appears at the end.

A batch can be *stalled* (``stall_at``): requests from that position on do not start until it is
resumed, canceled or expired, as when the provider's queue sits on a batch for hours. Tests use it to
let a deadline pass while a batch is still open.

:func:`new_batch` fixes a batch's schedule from the config of the moment it is created.

Nothing here runs by itself: :meth:`Batch.next_event` says when the batch next changes and
:meth:`Batch.step` applies that change; the emulator state calls them in time order across batches.
Per-request data is kept compact (see :class:`BatchRequest`) so 100k-request batches stay small.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.engine import PreparedRequest, Usage
from nightbatch.emulator.ids import stable_hash

__all__ = ["CANCELED", "ERRORED", "EXPIRED", "OUTCOMES", "PENDING", "SUCCEEDED", "Batch", "BatchRequest", "new_batch"]

PENDING: Final = 0
SUCCEEDED: Final = 1
ERRORED: Final = 2
CANCELED: Final = 3
EXPIRED: Final = 4
OUTCOMES: Final = ("processing", "succeeded", "errored", "canceled", "expired")


@dataclass(slots=True)
class BatchRequest:
    """One request of a batch: its id, what is needed to render its result, and its outcome."""

    custom_id: str
    prepared: PreparedRequest | None  # None when params failed validation
    error: tuple[str, str] | None = None  # (error type, message) for errored results
    outcome: int = PENDING
    usage: Usage | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


WaveRunner = Callable[["Batch", range, float], None]


@dataclass(slots=True)
class Batch:
    """One Message Batch."""

    id: str
    workspace_id: str
    created_at: float
    requests: list[BatchRequest]
    concurrency: int
    wave_seconds: float
    start_delay: float
    cancel_delay: float
    expiry_seconds: float
    retention_seconds: float
    next_index: int = 0
    last_wave_end: float = 0.0
    cancel_initiated_at: float | None = None
    cancel_done_at: float | None = None
    ended_at: float | None = None
    counts: tuple[int, int, int, int, int] = field(default=(0, 0, 0, 0, 0))
    stall_at: int | None = None  # requests from this position on wait until resumed (None: not stalled)

    @property
    def stalled(self) -> bool:
        """Whether the next request to start is held back by a stall."""
        return self.stall_at is not None and self.next_index >= self.stall_at and self.cancel_done_at is None

    @property
    def expires_at(self) -> float:
        """When unfinished requests expire."""
        return self.created_at + self.expiry_seconds

    @property
    def status(self) -> str:
        """``in_progress`` | ``canceling`` | ``ended``."""
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def archived_at(self, now: float) -> float | None:
        """When results became unavailable (once the retention window has passed), else None."""
        moment = self.created_at + self.retention_seconds
        return moment if now >= moment else None

    def request_counts(self) -> dict[str, int]:
        """``processing`` = all until the batch ends, then the final split."""
        if self.ended_at is None:
            return {"processing": len(self.requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        return dict(zip(OUTCOMES, self.counts, strict=True))

    def unprocessed(self) -> int:
        """Requests not yet started (0 once ended or canceling)."""
        if self.ended_at is not None or self.cancel_initiated_at is not None:
            return 0
        return len(self.requests) - self.next_index

    def _wave_start(self) -> float:
        return self.created_at + self.start_delay + (self.next_index // self.concurrency) * self.wave_seconds

    def next_event(self) -> float | None:
        """Simulated time of this batch's next change, or None once ended."""
        if self.ended_at is not None:
            return None
        if self.cancel_done_at is not None:
            return self.cancel_done_at
        if self.next_index >= len(self.requests):
            return self.last_wave_end
        if self.stalled:
            return max(self.expires_at, self.last_wave_end)
        start = self._wave_start()
        return self.expires_at if start + self.wave_seconds > self.expires_at else start

    def step(self, run_wave: WaveRunner) -> None:
        """Apply the change due at :meth:`next_event`."""
        moment = self.next_event()
        if moment is None:
            return
        if self.cancel_done_at is not None:
            self._finish(moment, CANCELED)
        elif self.next_index >= len(self.requests) or self.stalled:
            self._finish(moment, EXPIRED)
        else:
            start = self._wave_start()
            if start + self.wave_seconds > self.expires_at:
                self._finish(self.expires_at, EXPIRED)
                return
            stop = min(len(self.requests), self.next_index + self.concurrency)
            # Waves are aligned to multiples of `concurrency` from the first request.
            stop = min(stop, (self.next_index // self.concurrency + 1) * self.concurrency)
            if self.stall_at is not None and self.stall_at > self.next_index:
                stop = min(stop, self.stall_at)
            run_wave(self, range(self.next_index, stop), start)
            self.next_index = stop
            self.last_wave_end = start + self.wave_seconds

    def stall(self, after_requests: int = 0) -> None:
        """Hold back every request from position ``after_requests`` on (those already started still finish)."""
        self.stall_at = max(0, after_requests)

    def resume(self, now: float) -> None:
        """Lift a stall: the held-back requests start with the next wave from ``now``."""
        if self.stall_at is None:
            return
        held = self.stalled
        self.stall_at = None
        if held:
            # Shift the schedule so the next wave starts now, not at its (long past) planned time.
            waves_done = self.next_index // self.concurrency
            self.start_delay = max(self.start_delay, now - self.created_at - waves_done * self.wave_seconds)

    def cancel(self, now: float) -> None:
        """Start canceling at ``now`` (no-op unless in progress)."""
        if self.status != "in_progress":
            return
        self.cancel_initiated_at = now
        self.cancel_done_at = max(now + self.cancel_delay, self.last_wave_end)

    def _finish(self, moment: float, leftover: int) -> None:
        counts = [0, 0, 0, 0, 0]
        for request in self.requests:
            if request.outcome == PENDING:
                request.outcome = leftover
            counts[request.outcome] += 1
        self.counts = (counts[0], counts[1], counts[2], counts[3], counts[4])
        self.ended_at = moment


def new_batch(
    config: EmulatorConfig, batch_id: str, workspace: str, created_at: float, requests: list[BatchRequest]
) -> Batch:
    """The batch, scheduled by ``config`` as it is now (later config changes leave it alone)."""
    return Batch(
        id=batch_id,
        workspace_id=workspace,
        created_at=created_at,
        requests=requests,
        concurrency=config.batch_concurrency,
        wave_seconds=config.wave_seconds,
        start_delay=config.batch_start_delay_seconds + _model_delay(config, batch_id, requests),
        cancel_delay=config.cancel_delay_seconds,
        expiry_seconds=config.batch_expiry_seconds,
        retention_seconds=config.results_retention_seconds,
    )


def _model_delay(config: EmulatorConfig, batch_id: str, requests: list[BatchRequest]) -> float:
    """Extra queueing for a batch of slow models (``model_batch_delay_seconds``): its slowest model's draw."""
    slow = config.model_batch_delay_seconds
    if not slow:
        return 0.0
    models = {r.prepared.request.model for r in requests if r.prepared is not None}
    draw = random.Random(stable_hash(config.seed, "batch-delay", batch_id)).random()
    bounds = [slow[m] for m in models if m in slow]
    return max((low + (high - low) * draw for low, high in bounds), default=0.0)
