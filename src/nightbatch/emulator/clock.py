"""The emulator's simulated clock.

``now = start + real_elapsed * time_scale + manual_offset``. Batches take minutes to hours on the
real service; with ``time_scale`` a test or demo compresses that (3600 makes an hour pass in a real
second) and :meth:`SimClock.advance` jumps ahead explicitly without sleeping. Nothing runs in the
background: the emulator state catches up lazily to :meth:`SimClock.now` on each request.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

__all__ = ["SimClock", "format_rfc3339"]


def format_rfc3339(epoch_seconds: float) -> str:
    """RFC 3339 UTC with microseconds, the way the API writes timestamps (``...T18:37:24.100435Z``)."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SimClock:
    """Simulated time in epoch seconds; thread-safe."""

    def __init__(self, start: float | None = None, time_scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._origin = time.time() if start is None else start
        self._mono = time.monotonic()
        self._scale = time_scale
        self._offset = 0.0

    def now(self) -> float:
        """Current simulated time (epoch seconds)."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> float:
        return self._origin + (time.monotonic() - self._mono) * self._scale + self._offset

    @property
    def time_scale(self) -> float:
        """Simulated seconds per real second."""
        return self._scale

    def advance(self, seconds: float) -> float:
        """Jump ``seconds`` ahead (never back); returns the new now."""
        if seconds < 0:
            raise ValueError(f"cannot move the emulator clock backwards ({seconds} s)")
        with self._lock:
            self._offset += seconds
            return self._now_locked()

    def set_time_scale(self, time_scale: float) -> None:
        """Change the speed from now on, keeping ``now`` continuous."""
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        with self._lock:
            self._origin = self._now_locked()
            self._mono = time.monotonic()
            self._offset = 0.0
            self._scale = time_scale

    def resume_at_least(self, moment: float) -> None:
        """Make sure ``now`` is not earlier than ``moment`` (used when reloading persisted state)."""
        with self._lock:
            behind = moment - self._now_locked()
            if behind > 0:
                self._offset += behind
