"""Shadow sampling: a small, deterministic share of routine tasks also goes to the next rung up.

The routed model keeps being measured against its better: the shadow result is checked and compared
with the routed one (agreement), billed and recorded as an attempt with purpose ``shadow``, and never
changes the task. Shadow requests ride in the higher model's batches under their own ``custom_id``
(kind ``s``, see :mod:`nightbatch.custom_ids`), so ingest can tell them apart.
"""

from __future__ import annotations

import hashlib

__all__ = ["in_shadow_sample"]


def in_shadow_sample(task_id: int, fraction: float) -> bool:
    """Whether ``task_id`` is in the shadow sample: stable across runs and workers, close to ``fraction``."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"shadow:{task_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction
