"""Processing requests: cache lookup, reply, usage and bill, for one real-time call or one batch wave.

Both paths plan their cache effects first, produce the reply, then commit the cache effects and bill
the usage, so real-time calls and batch items read, write and pay identically. What differs is when
writes become usable (at once for a real-time call; from the middle of the wave for a batch wave,
when its writers "started responding") and that batch items can end errored or expired by a fault.
"""

from __future__ import annotations

from dataclasses import dataclass

from nightbatch.emulator.batches import ERRORED, EXPIRED, SUCCEEDED, Batch
from nightbatch.emulator.cache import (
    CachePlan,
    CacheSpace,
    PromptCache,
    batch_read_allowed,
    batch_space,
    realtime_space,
)
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.engine import Completion, PreparedRequest, Usage, complete
from nightbatch.emulator.faults import Faults
from nightbatch.emulator.ids import IdFactory, derived_id
from nightbatch.emulator.ledger import Ledger
from nightbatch.emulator.responders import ResponderChain

__all__ = ["Answer", "Processor"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A billed real-time response: its id, reply and usage."""

    message_id: str
    completion: Completion
    usage: Usage


@dataclass(frozen=True, slots=True)
class Processor:
    """The parts of the state that processing reads and changes.

    Built per operation from the state, never kept: ``reset`` and ``configure`` replace these parts.
    """

    config: EmulatorConfig
    cache: PromptCache
    responders: ResponderChain
    faults: Faults
    ledger: Ledger

    def answer(self, workspace: str, prepared: PreparedRequest, now: float, ids: IdFactory) -> Answer:
        """Process one real-time ``/v1/messages`` call at ``now``: its writes are usable at once."""
        space = realtime_space(self.config, workspace)
        plan = self._plan(space, prepared, now)
        completion = complete(prepared, self.responders, self.config)
        usage = Usage.of(plan, completion.output_tokens)
        self.cache.commit(space, plan, now=now, usable_from=now)
        message_id = ids.new("msg")
        self.ledger.bill(workspace, prepared.request.model, usage, now, message_id)
        return Answer(message_id, completion, usage)

    def run_wave(self, batch: Batch, indices: range, moment: float) -> None:
        """Process the requests ``indices`` of ``batch`` as one wave starting at ``moment``."""
        space = batch_space(self.config, batch.workspace_id, batch.id)
        plans = []
        for index in indices:
            record = batch.requests[index]
            prepared = record.prepared
            if prepared is None:
                record.outcome = ERRORED
                continue
            record.prepared = PreparedRequest(prepared.request, prepared.min_cacheable_tokens, None)
            fault = self.faults.request_outcome(batch.id, record.custom_id)
            if fault is not None:
                record.outcome = EXPIRED if fault.outcome == "expired" else ERRORED
                record.error = (fault.outcome, fault.message or f"{fault.outcome} (emulated fault)")
                continue
            can_read = batch_read_allowed(self.config, batch.id, record.custom_id)
            plan = self._plan(space, prepared, moment, can_read=can_read)
            completion = complete(prepared, self.responders, self.config)
            record.outcome, record.usage = SUCCEEDED, Usage.of(plan, completion.output_tokens)
            record.stop_reason, record.stop_sequence = completion.stop_reason, completion.stop_sequence
            message_id = derived_id("msg", batch.id, index)
            model = prepared.request.model
            self.ledger.bill(batch.workspace_id, model, record.usage, moment, message_id, batch.id, record.custom_id)
            plans.append(plan)
        for plan in plans:  # written entries become usable once their writers start responding
            self.cache.commit(space, plan, now=moment, usable_from=moment + batch.wave_seconds / 2)

    def _plan(self, space: CacheSpace, prepared: PreparedRequest, moment: float, *, can_read: bool = True) -> CachePlan:
        assert prepared.shape is not None, "plan only unprocessed requests"
        lookback = self.config.cache_lookback_blocks
        shape, minimum = prepared.shape, prepared.min_cacheable_tokens
        return self.cache.plan(space, shape, minimum, moment, lookback, can_read=can_read)
