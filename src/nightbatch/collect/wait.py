"""Waiting for batches without hammering the API: capped exponential backoff and a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays of ``first``, ``first*factor``, ... capped at ``cap`` seconds, until ``deadline`` (monotonic)."""

    first: float = 2.0
    cap: float = 60.0
    factor: float = 2.0
    deadline_seconds: float = 24 * 3600
    clock: Callable[[], float] = time.monotonic
    _next: float = field(init=False)
    _deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = min(self.first, self.cap)
        self._deadline = self.clock() + self.deadline_seconds

    @property
    def expired(self) -> bool:
        return self.clock() >= self._deadline

    def next_delay(self) -> float:
        """The pause before the next poll (never past the deadline)."""
        delay = min(self._next, max(0.0, self._deadline - self.clock()))
        self._next = min(self._next * self.factor, self.cap)
        return delay

    def reset(self) -> None:
        self._next = min(self.first, self.cap)
