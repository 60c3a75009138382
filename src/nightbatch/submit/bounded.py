"""Claiming a submit step's tasks a piece at a time, as building consumes them.

Claimed tasks carry their payloads and one claim of 100,000 rows peaked at ~1.8 KB a task resident
(driver rows, decoded JSON, the task objects, all alive at once), more than the requests built from
them (~0.6 KB). :class:`ClaimedPieces` claims ``piece`` tasks at a time and hands each on while
letting go of it, so the step holds one piece of claimed rows plus the requests built so far.

The piece size trades memory for claim statements. Measured for a 100,000-task chunk (PostgreSQL, claim +
build + pack): one claim peaked at +183 MiB; pieces of 50,000 at +119, 25,000 at +86, 10,000 at +66. A
claim statement reads the claim-order index (migration 0008), so it costs its piece, not the queue's depth
(before that index each one sorted every claimable row, 1.2 s at a million queued, and pieces were 25,000):
10,000 takes the lower memory for a few more, cheap, statements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from nightbatch.queue.claim import ClaimedTask

__all__ = ["CLAIM_PIECE", "ClaimedPieces", "drain"]

T = TypeVar("T")

CLAIM_PIECE = 10_000


def drain(items: list[T]) -> Iterator[T]:
    """Yield ``items`` in order, removing each from the list as it is handed on (the list ends empty)."""
    items.reverse()
    while items:
        yield items.pop()


class ClaimedPieces:
    """Up to ``limit`` tasks claimed by ``claim_some(n)`` calls of at most ``piece`` each, lazily.

    The first piece is claimed at once (so an empty queue is known before anything is built); each
    further piece when the previous one has been consumed. ``ids`` lists every task claimed so far, for
    giving them back if building fails.
    """

    def __init__(self, claim_some: Callable[[int], list[ClaimedTask]], limit: int, piece: int = CLAIM_PIECE) -> None:
        if piece < 1:
            raise ValueError(f"piece must be at least 1, got {piece}")
        self._claim_some = claim_some
        self._piece = piece
        self._left = limit
        self.ids: list[int] = []
        self._first = self._take()

    def _take(self) -> list[ClaimedTask]:
        want = min(self._piece, self._left)
        got = self._claim_some(want) if want > 0 else []
        self.ids += [t.id for t in got]
        # Fewer than asked: the queue has no more for us; claiming again would only return nothing.
        self._left = self._left - len(got) if len(got) == want else 0
        return got

    def __iter__(self) -> Iterator[ClaimedTask]:
        yield from drain(self._first)
        while self._left > 0:
            yield from drain(self._take())
