"""The emulated provider's state and its Messages / Batches operations, independent of HTTP.

Holds batches, the prompt cache, the billed ledger, the clock, the faults and the responders behind
one re-entrant lock (the HTTP server and a test thread both use it). Time advances lazily: every
operation first calls :meth:`EmulatorState.sync`, which applies every batch event due up to ``now``
in time order across batches, so batch waves and real-time calls interleave as they would have.
"""

from __future__ import annotations

import collections
import heapq
import random
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC
from typing import Any, cast

from nightbatch.emulator import persistence
from nightbatch.emulator.batches import ERRORED, EXPIRED, SUCCEEDED, Batch, BatchRequest
from nightbatch.emulator.cache import (
    CachePlan,
    CacheSpace,
    PromptCache,
    batch_read_allowed,
    batch_space,
    realtime_space,
)
from nightbatch.emulator.clock import SimClock
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.engine import Completion, PreparedRequest, Usage, complete, prepare_request
from nightbatch.emulator.errors import ApiError
from nightbatch.emulator.faults import Faults, malform_line
from nightbatch.emulator.ids import IdFactory, derived_id, stable_hash
from nightbatch.emulator.ledger import Ledger
from nightbatch.emulator.prompt import analyse_prompt
from nightbatch.emulator.render import message_json, result_line
from nightbatch.emulator.responders import DefaultResponder, ResponderChain
from nightbatch.emulator.task_responders import builtin_responders
from nightbatch.emulator.validation import validate_count_tokens_params

__all__ = ["EmulatorState"]

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOO_LARGE = "params: Request exceeds the maximum allowed number of bytes."


def _bad(message: str) -> ApiError:
    return ApiError("invalid_request_error", message)


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

    # ------------------------------------------------------------------ simulated time
    def sync(self) -> float:
        """Apply every batch event due by now, in time order across batches; return now."""
        with self.lock:
            now = max(self.clock.now(), self.synced_to)
            order = {batch_id: position for position, batch_id in enumerate(self.order)}
            queue = [(t, order[b.id], b) for b in self.batches.values() if (t := b.next_event()) is not None]
            heapq.heapify(queue)
            while queue and queue[0][0] <= now:
                _, position, batch = heapq.heappop(queue)
                batch.step(self._run_wave)
                self.dirty = True
                if (moment := batch.next_event()) is not None:
                    heapq.heappush(queue, (moment, position, batch))
            self.counters["syncs"] += 1
            if self.counters["syncs"] % 256 == 0:
                self.cache.prune(now)
            self.synced_to = now
            return now

    def _plan(self, space: CacheSpace, prepared: PreparedRequest, moment: float, *, can_read: bool = True) -> CachePlan:
        assert prepared.shape is not None, "plan only unprocessed requests"
        lookback = self.config.cache_lookback_blocks
        shape, minimum = prepared.shape, prepared.min_cacheable_tokens
        return self.cache.plan(space, shape, minimum, moment, lookback, can_read=can_read)

    def _run_wave(self, batch: Batch, indices: range, moment: float) -> None:
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
            self._bill(batch.workspace_id, prepared, record.usage, moment, message_id, batch.id, record.custom_id)
            plans.append(plan)
        for plan in plans:  # written entries become usable once their writers start responding
            self.cache.commit(space, plan, now=moment, usable_from=moment + batch.wave_seconds / 2)

    def _bill(
        self,
        workspace: str,
        prepared: PreparedRequest,
        usage: Usage,
        moment: float,
        message_id: str,
        batch_id: str | None = None,
        custom_id: str | None = None,
    ) -> None:
        self.ledger.record(
            billed_at=moment,
            workspace_id=workspace,
            model=prepared.request.model,
            service_tier="batch" if batch_id else "standard",
            message_id=message_id,
            batch_id=batch_id,
            custom_id=custom_id,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens,
            ephemeral_5m_input_tokens=usage.ephemeral_5m_input_tokens,
            ephemeral_1h_input_tokens=usage.ephemeral_1h_input_tokens,
        )

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
            space = realtime_space(self.config, workspace)
            plan = self._plan(space, prepared, now)
            completion: Completion = complete(prepared, self.responders, self.config)
            usage = Usage.of(plan, completion.output_tokens)
            self.cache.commit(space, plan, now=now, usable_from=now)
            message_id = self.ids.new("msg")
            self._bill(workspace, prepared, usage, now, message_id)
            self.dirty = True
            return message_json(message_id, prepared.request.model, completion, usage, service_tier="standard")

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
        items = self._check_batch_body(body)
        with self.lock:
            now = self.sync()
            cap = self.config.max_queued_batch_requests
            queued = sum(b.unprocessed() for b in self.batches.values() if b.workspace_id == workspace)
            if cap is not None and queued + len(items) > cap:
                raise ApiError(
                    "rate_limit_error",
                    f"Batch queue limit reached: {queued} requests waiting + {len(items)} > {cap}.",
                    headers={"retry-after": "60"},
                )
            intern: dict[str, str] = {}
            requests = [
                self._batch_request(item, api_version, intern)
                if index not in oversized
                else BatchRequest(str(item["custom_id"]), None, ("invalid_request_error", _TOO_LARGE))
                for index, item in enumerate(items)
            ]
            config = self.config
            batch = Batch(
                id=self.ids.new("msgbatch"),
                workspace_id=workspace,
                created_at=now,
                requests=requests,
                concurrency=config.batch_concurrency,
                wave_seconds=config.wave_seconds,
                start_delay=config.batch_start_delay_seconds,
                cancel_delay=config.cancel_delay_seconds,
                expiry_seconds=config.batch_expiry_seconds,
                retention_seconds=config.results_retention_seconds,
            )
            self.batches[batch.id] = batch
            self.order.append(batch.id)
            self.dirty = True
            return batch

    def _check_batch_body(self, body: object) -> list[Mapping[str, Any]]:
        if not isinstance(body, Mapping):
            raise _bad("body: Input should be a valid dictionary")
        for key in body:
            if key != "requests":
                raise _bad(f"{key}: Extra inputs are not permitted")
        items = body.get("requests")
        if not isinstance(items, list):
            raise _bad("requests: Field required" if items is None else "requests: Input should be a valid list")
        limit = self.config.max_batch_requests
        if not 1 <= len(items) <= limit:
            raise _bad(f"requests: List should have between 1 and {limit} items, not {len(items)}")
        seen: set[str] = set()
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise _bad(f"requests.{index}: Input should be a valid dictionary")
            custom_id = item.get("custom_id")
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                raise _bad(f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            if custom_id in seen:
                raise _bad(f"requests.{index}.custom_id: duplicate custom_id {custom_id!r}; must be unique in a batch")
            seen.add(custom_id)
            if not isinstance(item.get("params"), Mapping):
                raise _bad(f"requests.{index}.params: Input should be a valid dictionary")
            for key in item:
                if key not in ("custom_id", "params"):
                    raise _bad(f"requests.{index}.{key}: Extra inputs are not permitted")
        return items

    def _batch_request(self, item: Mapping[str, Any], api_version: str | None, intern: dict[str, str]) -> BatchRequest:
        custom_id = str(item["custom_id"])
        try:
            prepared = prepare_request(
                item["params"], in_batch=True, api_version=api_version, config=self.config, intern=intern
            )
        except ApiError as exc:
            return BatchRequest(custom_id, None, (exc.error_type, exc.message))
        return BatchRequest(custom_id, prepared)

    def get_batch(self, workspace: str, batch_id: str) -> Batch:
        """The batch, or 404 (also for another workspace's batch)."""
        with self.lock:
            self.sync()
            batch = self.batches.get(batch_id)
            if batch is None or batch.workspace_id != workspace:
                raise ApiError("not_found_error", f"message_batch_id: no Message Batch with id {batch_id!r}")
            return batch

    def list_batches(
        self, workspace: str, *, after_id: str | None, before_id: str | None, limit: int
    ) -> tuple[list[Batch], bool]:
        """A page of batches, newest first, and whether more exist in the paging direction."""
        if after_id and before_id:
            raise _bad("after_id and before_id cannot both be set")
        if not 1 <= limit <= 1000:
            raise _bad(f"limit: Input should be between 1 and 1000, not {limit}")
        with self.lock:
            self.sync()
            ids = [i for i in reversed(self.order) if self.batches[i].workspace_id == workspace]
            cursor = after_id or before_id
            if cursor is not None and cursor not in ids:
                raise _bad(f"{'after_id' if after_id else 'before_id'}: unknown Message Batch id {cursor!r}")
            if after_id:
                start = ids.index(after_id) + 1
                page, more = ids[start : start + limit], start + limit < len(ids)
            elif before_id:
                end = ids.index(before_id)
                page, more = ids[max(0, end - limit) : end], end - limit > 0
            else:
                page, more = ids[:limit], limit < len(ids)
            return [self.batches[i] for i in page], more

    def cancel_batch(self, workspace: str, batch_id: str) -> Batch:
        """Start canceling; 400 if processing already ended (unverified: the docs only say "before it ends")."""
        with self.lock:
            batch = self.get_batch(workspace, batch_id)
            if batch.status == "ended":
                raise _bad(f"Message Batch {batch_id} has already ended and cannot be canceled.")
            batch.cancel(self.synced_to)
            self.dirty = True
            return batch

    def delete_batch(self, workspace: str, batch_id: str) -> dict[str, str]:
        """Delete an ended batch; 400 while it is still processing."""
        with self.lock:
            batch = self.get_batch(workspace, batch_id)
            if batch.status != "ended":
                raise _bad(
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
            if batch.status != "ended":
                raise _bad(f"Message Batch {batch_id} is still {batch.status}; results are available once it ends.")
            if batch.archived_at(self.synced_to) is not None:
                raise ApiError("not_found_error", f"results of Message Batch {batch_id} have been archived")
            order = list(range(len(batch.requests)))
            random.Random(stable_hash(self.config.seed, batch.id)).shuffle(order)
            return batch, order

    def result_chunks(self, batch: Batch, order: list[int], *, limit: int | None = None) -> Iterator[bytes]:
        """Result lines in ``order`` (the first ``limit`` only), rendered a chunk at a time."""
        size = self.config.results_chunk_lines
        shown = order if limit is None else order[:limit]
        for start in range(0, len(shown), size):
            # Render under the lock, yield outside it: a slow reader must never hold the state lock.
            with self.lock:
                chunk = b"".join(self._result_line(batch, i) for i in shown[start : start + size])
            yield chunk

    def _result_line(self, batch: Batch, index: int) -> bytes:
        line = result_line(batch, index, self.responders, self.config)
        if self.faults.has_result_faults():
            kind = self.faults.result_malformation(batch.id, batch.requests[index].custom_id)
            if kind is not None:
                return malform_line(line, kind)
        return line
