"""Pausing Python's cyclic garbage collector around bulk work that allocates many objects and no cycles.

Ingesting a batch parses thousands of result lines per chunk and keeps them until the chunk's rows are
written: they outlive the young generations, so the collector keeps promoting them and every few chunks
runs a full collection, which walks every object the process holds (Prefect, SQLAlchemy and the SDK are
hundreds of thousands). Measured on 100k results: a quarter of the ingest's CPU time. The objects ingest
creates are freed by reference counting; nothing it builds needs the cycle collector.

The pause is process-wide (the collector has no per-thread switch), so it is counted: concurrent pausers
(two ingests in worker threads) leave the collector as it was only when the last of them finishes, and a
collector already disabled by the application stays disabled.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]

_lock = threading.Lock()
_pausers = 0
_restore = False  # whether the first pauser found the collector enabled


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic cyclic collection inside the block; cycles made meanwhile are collected after it."""
    global _pausers, _restore
    with _lock:
        if _pausers == 0:
            _restore = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _restore:
                gc.enable()
