"""A batch's results as served: only once it ended and until archived, in a shuffled order, faults applied.

The real API does not return results in submission order, so the order is shuffled, deterministically
under the seed so that every download of a batch lists its lines identically. Result faults damage
lines as they are served; the stored outcomes stay intact.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from nightbatch.emulator.batches import Batch
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.errors import ApiError, invalid_request
from nightbatch.emulator.faults import Faults, malform_line
from nightbatch.emulator.ids import stable_hash
from nightbatch.emulator.render import result_line
from nightbatch.emulator.responders import ResponderChain

__all__ = ["check_results_available", "render_lines", "result_order"]


def check_results_available(batch: Batch, now: float) -> None:
    """400 while the batch is still processing, 404 once its results are archived."""
    if batch.status != "ended":
        message = f"Message Batch {batch.id} is still {batch.status}; results are available once it ends."
        raise invalid_request(message)
    if batch.archived_at(now) is not None:
        raise ApiError("not_found_error", f"results of Message Batch {batch.id} have been archived")


def result_order(seed: int, batch: Batch) -> list[int]:
    """The positions of the batch's requests in the order its results are listed."""
    order = list(range(len(batch.requests)))
    random.Random(stable_hash(seed, batch.id)).shuffle(order)
    return order


def render_lines(
    batch: Batch, indices: Sequence[int], responders: ResponderChain, config: EmulatorConfig, faults: Faults
) -> bytes:
    """The result lines of ``indices``, in that order, each damaged as an armed result fault says."""
    return b"".join(_served_line(batch, index, responders, config, faults) for index in indices)


def _served_line(batch: Batch, index: int, responders: ResponderChain, config: EmulatorConfig, faults: Faults) -> bytes:
    line = result_line(batch, index, responders, config)
    if faults.has_result_faults():
        kind = faults.result_malformation(batch.id, batch.requests[index].custom_id)
        if kind is not None:
            return malform_line(line, kind)
    return line
