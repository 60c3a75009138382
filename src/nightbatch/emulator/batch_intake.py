"""Admitting a new Message Batch: the body's structure, the queue limit, its request records, its schedule.

The body's structure (``requests``, each with a ``custom_id`` and ``params``) is checked at once and
rejects the whole batch, as the real API does; each request's params are checked on their own and
a failing one only ends ``errored`` in the results.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

from nightbatch.emulator.batches import Batch, BatchRequest
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.engine import prepare_request
from nightbatch.emulator.errors import ApiError, invalid_request
from nightbatch.emulator.ids import stable_hash

__all__ = ["batch_requests", "check_batch_body", "check_queue_room", "new_batch"]

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOO_LARGE = "params: Request exceeds the maximum allowed number of bytes."


def check_batch_body(body: object, max_requests: int) -> list[Mapping[str, Any]]:
    """The body's requests, or the 400 the API answers for a malformed body."""
    if not isinstance(body, Mapping):
        raise invalid_request("body: Input should be a valid dictionary")
    for key in body:
        if key != "requests":
            raise invalid_request(f"{key}: Extra inputs are not permitted")
    items = body.get("requests")
    if not isinstance(items, list):
        raise invalid_request("requests: Field required" if items is None else "requests: Input should be a valid list")
    if not 1 <= len(items) <= max_requests:
        raise invalid_request(f"requests: List should have between 1 and {max_requests} items, not {len(items)}")
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise invalid_request(f"requests.{index}: Input should be a valid dictionary")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise invalid_request(f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if custom_id in seen:
            raise invalid_request(
                f"requests.{index}.custom_id: duplicate custom_id {custom_id!r}; must be unique in a batch"
            )
        seen.add(custom_id)
        if not isinstance(item.get("params"), Mapping):
            raise invalid_request(f"requests.{index}.params: Input should be a valid dictionary")
        for key in item:
            if key not in ("custom_id", "params"):
                raise invalid_request(f"requests.{index}.{key}: Extra inputs are not permitted")
    return items


def check_queue_room(batches: Iterable[Batch], workspace: str, adding: int, cap: int | None) -> None:
    """429 when ``adding`` more requests would queue more than ``cap`` unstarted ones in ``workspace``."""
    queued = sum(b.unprocessed() for b in batches if b.workspace_id == workspace)
    if cap is not None and queued + adding > cap:
        raise ApiError(
            "rate_limit_error",
            f"Batch queue limit reached: {queued} requests waiting + {adding} > {cap}.",
            headers={"retry-after": "60"},
        )


def batch_requests(
    items: list[Mapping[str, Any]], api_version: str | None, config: EmulatorConfig, oversized: frozenset[int]
) -> list[BatchRequest]:
    """One record per item; ``oversized`` positions (past the Messages size limit) and invalid params end errored."""
    intern: dict[str, str] = {}
    return [
        _batch_request(item, api_version, config, intern)
        if index not in oversized
        else BatchRequest(str(item["custom_id"]), None, ("invalid_request_error", _TOO_LARGE))
        for index, item in enumerate(items)
    ]


def _batch_request(
    item: Mapping[str, Any], api_version: str | None, config: EmulatorConfig, intern: dict[str, str]
) -> BatchRequest:
    custom_id = str(item["custom_id"])
    try:
        prepared = prepare_request(item["params"], in_batch=True, api_version=api_version, config=config, intern=intern)
    except ApiError as exc:
        return BatchRequest(custom_id, None, (exc.error_type, exc.message))
    return BatchRequest(custom_id, prepared)


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
