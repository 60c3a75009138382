"""Admitting a new Message Batch: the queue limit and its request records.

The body's structure is checked before (:func:`~nightbatch.emulator.batch_body.validate_batch_body`) and
rejects the whole batch, as the real API does; each request's params are checked here on their own and
a failing one only ends ``errored`` in the results. The batch and its schedule are made by
:func:`~nightbatch.emulator.batches.new_batch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nightbatch.emulator.batches import Batch, BatchRequest
from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.engine import prepare_request
from nightbatch.emulator.errors import ApiError

__all__ = ["batch_requests", "check_queue_room"]

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
