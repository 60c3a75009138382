"""Cache priming: one real-time request that writes a group's shared prefix before its batch goes out.

Chosen by the TTL arithmetic (``1h+priming`` in :mod:`nightbatch.build.cache_ttl`) when the writes it
saves the batch's first wave are worth more than one write at real-time prices. The request asks for a
single output token; its usage is billed at standard prices and recorded in the ledger with purpose
``priming`` (it serves no single task). A failed priming request only costs the saving: the batch is
sent anyway.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import insert

from nightbatch.build.context import estimate_tokens
from nightbatch.build.requests import BuiltRequest
from nightbatch.db.models import ServiceTier, UsagePurpose, UsageRecord, utcnow
from nightbatch.errors import ProviderError
from nightbatch.pricing import Usage, price_usage
from nightbatch.services import Services
from nightbatch.submit.plan import PrefixSizer

__all__ = ["prime_prefix"]

log = logging.getLogger(__name__)

_PROBE = [{"role": "user", "content": "Reply with OK."}]


def _estimated_usage(services: Services, params: dict[str, Any], request: BuiltRequest) -> dict[str, Any]:
    """What a priming call that lost its answer was most likely billed: the prefix written for 1 h."""
    prefix = PrefixSizer(services.client).tokens(request.prefix)
    try:
        total = services.client.count_tokens(params)
    except ProviderError:
        total = prefix + estimate_tokens(_PROBE)
    creation = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": prefix}
    return {"input_tokens": max(0, total - prefix), "output_tokens": 1, "cache_creation_input_tokens": prefix,
            "cache_read_input_tokens": 0, "cache_creation": creation}  # fmt: skip


def prime_prefix(services: Services, request: BuiltRequest, *, run_id: int | None) -> int | None:
    """Write ``request``'s prefix to the cache under the 1-hour TTL; returns the cost in picodollars."""
    params = {"model": request.model, "max_tokens": 1, **request.prefix.render("1h"), "messages": _PROBE}
    try:
        # No SDK retries: a retried call whose first answer was lost would be billed twice, booked once.
        message = services.client.create_message(params, max_retries=0)
    except ProviderError as exc:
        log.warning("priming the %s prefix of %s failed, sending the batch unprimed: %s", request.model,
                    request.task_type, exc)  # fmt: skip
        if not exc.maybe_applied:
            return None
        # The call may have been billed with its answer lost: book what it would have cost, estimated.
        message = {"id": None, "usage": _estimated_usage(services, params, request)}
    usage = Usage.from_api(message.get("usage") or {})
    cost = price_usage(services.prices, request.model, usage, "standard")
    with services.engine.begin() as conn:
        conn.execute(
            insert(UsageRecord).values(
                task_id=None,
                batch_id=None,
                run_id=run_id,
                response_id=message.get("id"),
                model=request.model,
                service_tier=ServiceTier.STANDARD,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_write_5m_tokens=usage.cache_write_5m_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                price_version=services.prices.version,
                cost_pusd=cost.total_pusd,
                purpose=UsagePurpose.PRIMING,
                created_at=utcnow(),
            )
        )
    return cost.total_pusd
