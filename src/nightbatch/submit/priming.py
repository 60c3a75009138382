"""Cache priming: one real-time request that writes a group's shared prefix before its batch goes out.

Chosen by the TTL arithmetic (``1h+priming`` in :mod:`nightbatch.build.cache_ttl`) when the writes it
saves the batch's first wave are worth more than one write at real-time prices. The request asks for a
single output token; its usage is billed at standard prices and recorded in the ledger with purpose
``priming`` (it serves no single task). A failed priming request only costs the saving: the batch is
sent anyway.
"""

from __future__ import annotations

import logging

from sqlalchemy import insert

from nightbatch.build.requests import BuiltRequest
from nightbatch.db.models import ServiceTier, UsagePurpose, UsageRecord, utcnow
from nightbatch.errors import ProviderError
from nightbatch.pricing import Usage, price_usage
from nightbatch.services import Services

__all__ = ["prime_prefix"]

log = logging.getLogger(__name__)

_PROBE = [{"role": "user", "content": "Reply with OK."}]


def prime_prefix(services: Services, request: BuiltRequest, *, run_id: int | None) -> int | None:
    """Write ``request``'s prefix to the cache under the 1-hour TTL; returns the cost in picodollars."""
    params = {"model": request.model, "max_tokens": 1, **request.prefix.render("1h"), "messages": _PROBE}
    try:
        # No SDK retries: a retried call whose first answer was lost would be billed twice, booked once.
        message = services.client.create_message(params, max_retries=0)
    except ProviderError as exc:
        log.warning("priming the %s prefix of %s failed, sending the batch unprimed: %s", request.model,
                    request.task_type, exc)  # fmt: skip
        if exc.status_code is None:
            # The connection failed after sending: the call may have been billed, but its usage never
            # arrived, so it cannot be priced exactly. Said loudly rather than guessed into the ledger.
            log.error("priming call to %s may have been billed without an answer: not in the ledger", request.model)
        return None
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
