"""Admitting a new Message Batch: the queue limit, its request records, its schedule.

The body's structure is checked before (:func:`~nightbatch.emulator.validation.validate_batch_body`) and
rejects the whole batch, as the real API does; each request's params are checked here on their own and
a failing one only ends ``errored`` in the results.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from nightbatch.emulator.batches import Batch, BatchRequest
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.engine import prepare_request
from nightbatch.emulator.errors import ApiError
from nightbatch.emulator.ids import stable_hash

__all__ = ["batch_requests", "check_queue_room", "new_batch"]

_TOO_LARGE = "params: Request exceeds the maximum allowed number of bytes."


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
