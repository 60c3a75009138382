"""The emulated provider's state, and the thread-safe operations the HTTP app and tests call on it.

Holds batches, the prompt cache, the billed ledger, the clock, the faults and the responders behind
one re-entrant lock (the HTTP server and a test thread both use it). Time advances lazily: every
operation first calls :meth:`EmulatorState.sync`, which applies every batch event due up to ``now``
in time order across batches, so batch waves and real-time calls interleave as they would have.

Each operation here only locks, syncs, finds and records; the work lives in the modules it calls:
:mod:`~nightbatch.emulator.processing` (cache, reply, bill), :mod:`~nightbatch.emulator.validation` and
:mod:`~nightbatch.emulator.batch_intake` (a new batch's body, queue room and request records),
:mod:`~nightbatch.emulator.batches` (its schedule), :mod:`~nightbatch.emulator.paging` (the batch list)
and :mod:`~nightbatch.emulator.results`.
"""

from __future__ import annotations

import collections
import heapq
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC
from typing import Any, cast

from nightbatch.emulator import paging, persistence, results
from nightbatch.emulator.batch_body import validate_batch_body
from nightbatch.emulator.batch_intake import batch_requests, check_queue_room
from nightbatch.emulator.batches import Batch, new_batch
from nightbatch.emulator.cache import PromptCache
from nightbatch.emulator.clock import SimClock
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.engine import prepare_request
from nightbatch.emulator.errors import ApiError, invalid_request, not_found_message
from nightbatch.emulator.faults import Faults
from nightbatch.emulator.ids import IdFactory
from nightbatch.emulator.ledger import Ledger
from nightbatch.emulator.processing import Processor
from nightbatch.emulator.prompt import analyse_prompt
from nightbatch.emulator.render import message_json
from nightbatch.emulator.responders import DefaultResponder, ResponderChain
from nightbatch.emulator.task_responders import builtin_responders
from nightbatch.emulator.validation import validate_count_tokens_params

__all__ = ["EmulatorState"]


class EmulatorState:
    """Everything the emulated API knows; every public method is thread-safe."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.lock = threading.RLock()
        self.initial_config = config or EmulatorConfig()
        self.faults = Faults(self.initial_config.seed)
        self.dirty = False
        self.last_saved = 0.0
        self.reset(self.initial_config)
        if self.config.persist_path is not None:
            persistence.load(self, self.config.persist_path)

    # ------------------------------------------------------------------ the state itself
    def reset(self, config: EmulatorConfig | None = None) -> None:
        """Forget batches, cache, ledger, faults, log and custom responders; restart the clock."""
        with self.lock:
            self.config = config or self.initial_config
            start = self.config.start_time
            self.clock = SimClock(None if start is None else start.astimezone(UTC).timestamp(), self.config.time_scale)
            self.ids = IdFactory(self.config.seed)
            self.cache = PromptCache()
            self.ledger = Ledger()
            self.batches: dict[str, Batch] = {}
            self.order: list[str] = []
            self.request_log: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.config.request_log_size)
            self.counters: collections.Counter[str] = collections.Counter()
            self.faults.clear()
            self.responders = ResponderChain(builtin_responders(), self._default_responder())
            self.synced_to = self.clock.now()
            self.dirty = True

    def _default_responder(self) -> DefaultResponder:
        return DefaultResponder(self.config.reply_min_tokens, self.config.reply_max_tokens)

    def configure(self, **updates: Any) -> EmulatorConfig:
        """Change config fields from now on (batches already created keep their schedule)."""
        with self.lock:
            self.config = EmulatorConfig.model_validate({**self.config.model_dump(), **updates})
            if "time_scale" in updates:
                self.clock.set_time_scale(self.config.time_scale)
            if {"reply_min_tokens", "reply_max_tokens"} & updates.keys():
                self.responders.default = self._default_responder()
            return self.config

    def maybe_persist(self, *, force: bool = False) -> None:
        """Save to ``persist_path`` when configured, dirty and due (or ``force``)."""
        if self.config.persist_path is not None:
            with self.lock:
                persistence.save_if_due(self, self.config.persist_path, force=force)

    def _processor(self) -> Processor:
        return Processor(self.config, self.cache, self.responders, self.faults, self.ledger)

    # ------------------------------------------------------------------ simulated time
    def sync(self) -> float:
        """Apply every batch event due by now, in time order across batches; return now."""
        with self.lock:
            now = max(self.clock.now(), self.synced_to)
            order = {batch_id: position for position, batch_id in enumerate(self.order)}
            queue = [(t, order[b.id], b) for b in self.batches.values() if (t := b.next_event()) is not None]
            heapq.heapify(queue)
            run_wave = self._processor().run_wave
            while queue and queue[0][0] <= now:
                _, position, batch = heapq.heappop(queue)
                batch.step(run_wave)
                self.dirty = True
                if (moment := batch.next_event()) is not None:
                    heapq.heappush(queue, (moment, position, batch))
            self.counters["syncs"] += 1
            if self.counters["syncs"] % 256 == 0:
                self.cache.prune(now)
            self.synced_to = now
            return now

    # ------------------------------------------------------------------ Messages
    def new_request_id(self) -> str:
        """A fresh ``req_...`` id."""
        with self.lock:
            return self.ids.new("req")

    def create_message(self, workspace: str, params: object, api_version: str | None) -> dict[str, Any]:
        """``POST /v1/messages``: a synchronous, billed, cache-aware response."""
        with self.lock:
            now = self.sync()
            prepared = prepare_request(params, in_batch=False, api_version=api_version, config=self.config)
            answer = self._processor().answer(workspace, prepared, now, self.ids)
            self.dirty = True
            model = prepared.request.model
            return message_json(answer.message_id, model, answer.completion, answer.usage, service_tier="standard")

    def count_tokens(self, params: object, api_version: str | None) -> dict[str, int]:
        """``POST /v1/messages/count_tokens``: the prompt's total tokens (free, touches no cache)."""
        info = validate_count_tokens_params(params, api_version=api_version, catalog_path=self.config.catalog_path)
        ratio = self.config.tokenizer_ratios.get(info.tokenizer, 1.0)
        return {"input_tokens": analyse_prompt(cast(Mapping[str, Any], params), info.model, ratio=ratio).total_tokens}

    # ------------------------------------------------------------------ Message Batches
    def create_batch(
        self, workspace: str, body: object, api_version: str | None, *, oversized: frozenset[int] = frozenset()
    ) -> Batch:
        """``POST /v1/messages/batches``: structural checks now, per-request params checks later.

        ``oversized``: positions whose params exceed the Messages size limit (they end errored).
        """
        items = validate_batch_body(body, self.config.max_batch_requests)
        with self.lock:
            now = self.sync()
            check_queue_room(self.batches.values(), workspace, len(items), self.config.max_queued_batch_requests)
            requests = batch_requests(items, api_version, self.config, oversized)
            batch_id = self.ids.new("msgbatch")
            batch = new_batch(self.config, batch_id, workspace, now, requests)
            self.batches[batch.id] = batch
            self.order.append(batch.id)
            self.dirty = True
            return batch

    def stall_batch(self, batch_id: str, *, after_requests: int = 0) -> Batch:
        """Hold back a batch's requests from position ``after_requests`` on (a provider queue sitting on it).

        It stays ``in_progress`` until :meth:`resume_batch`, a cancel, or expiry (its held requests end
        ``expired``). Any workspace's batch: this is an admin knob, not part of the API.
        """
        with self.lock:
            self.sync()
            batch = self._any_batch(batch_id)
            batch.stall(after_requests)
            self.dirty = True
            return batch

    def resume_batch(self, batch_id: str) -> Batch:
        """Lift a stall: the held requests start with the next wave from now."""
        with self.lock:
            now = self.sync()
            batch = self._any_batch(batch_id)
            batch.resume(now)
            self.dirty = True
            return batch

    def _any_batch(self, batch_id: str) -> Batch:
        """Any workspace's batch, for the admin knobs (a KeyError the admin routes answer with 400)."""
        batch = self.batches.get(batch_id)
        if batch is None:
            raise KeyError(f"no batch {batch_id!r}")
        return batch

    def get_batch(self, workspace: str, batch_id: str) -> Batch:
        """The batch, or 404 (also for another workspace's batch)."""
        with self.lock:
            self.sync()
            batch = self.batches.get(batch_id)
            if batch is None or batch.workspace_id != workspace:
                raise ApiError("not_found_error", not_found_message(batch_id))
            return batch

    def list_batches(
        self, workspace: str, *, after_id: str | None, before_id: str | None, limit: int
    ) -> tuple[list[Batch], bool]:
        """A page of batches, newest first, and whether more exist in the paging direction."""
        paging.check_page_params(after_id, before_id, limit)
        with self.lock:
            self.sync()
            ids = [i for i in reversed(self.order) if self.batches[i].workspace_id == workspace]
            shown, more = paging.page(ids, after_id=after_id, before_id=before_id, limit=limit)
            return [self.batches[i] for i in shown], more

    def cancel_batch(self, workspace: str, batch_id: str) -> Batch:
        """Start canceling; 400 if processing already ended (unverified: the docs only say "before it ends")."""
        with self.lock:
            batch = self.get_batch(workspace, batch_id)
            if batch.status == "ended":
                raise invalid_request(f"Message Batch {batch_id} has already ended and cannot be canceled.")
            batch.cancel(self.synced_to)
            self.dirty = True
            return batch

    def delete_batch(self, workspace: str, batch_id: str) -> dict[str, str]:
        """Delete an ended batch; 400 while it is still processing."""
        with self.lock:
            batch = self.get_batch(workspace, batch_id)
            if batch.status != "ended":
                raise invalid_request(
                    f"Message Batch {batch_id} is {batch.status} and cannot be deleted; "
                    "cancel it and wait for processing to end first."
                )
            del self.batches[batch_id]
            self.order.remove(batch_id)
            self.dirty = True
            return {"id": batch_id, "type": "message_batch_deleted"}

    def result_order(self, workspace: str, batch_id: str) -> tuple[Batch, list[int]]:
        """An ended, unarchived batch and its (deterministically shuffled) result order."""
        with self.lock:
            batch = self.get_batch(workspace, batch_id)
            results.check_results_available(batch, self.synced_to)
            return batch, results.result_order(self.config.seed, batch)

    def result_chunks(self, batch: Batch, order: list[int], *, limit: int | None = None) -> Iterator[bytes]:
        """Result lines in ``order`` (the first ``limit`` only), rendered a chunk at a time."""
        size = self.config.results_chunk_lines
        shown = order if limit is None else order[:limit]
        for start in range(0, len(shown), size):
            # Render under the lock, yield outside it: a slow reader must never hold the state lock.
            with self.lock:
                lines = shown[start : start + size]
                chunk = results.render_lines(batch, lines, self.responders, self.config, self.faults)
            yield chunk
