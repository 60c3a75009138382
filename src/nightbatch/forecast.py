"""Forecasting what the queued work will cost before anything is sent.

Per (task type, model): the shared prefix is priced by the same TTL decision the submitter will make
(:mod:`nightbatch.build.cache_ttl`), per-task input by a local token estimate, and output at the type's
``max_tokens`` — an upper bound, since a reply can be shorter but never longer. All at batch prices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from nightbatch.build.cache_ttl import decide_ttl
from nightbatch.build.requests import RequestBuilder
from nightbatch.db.models import Task, TaskStatus
from nightbatch.pricing import BATCH_DISCOUNT
from nightbatch.route import choose_model
from nightbatch.services import Services
from nightbatch.submit.plan import PrefixSizer

__all__ = ["Forecast", "forecast_queue"]

_MTOK = Decimal(1_000_000)


@dataclass
class GroupForecast:
    tasks: int = 0
    tail_tokens: int = 0
    max_output_tokens: int = 0
    prefix_usd: Decimal = Decimal(0)


@dataclass
class Forecast:
    groups: dict[tuple[str, str], GroupForecast] = field(default_factory=dict)
    total_usd: Decimal = Decimal(0)
    tasks: int = 0

    def describe(self) -> str:
        return f"{self.tasks:,} queued tasks, at most ${self.total_usd:,.4f} at batch prices (output at max_tokens)"


def _queued(services: Services, task_types: list[str] | None) -> Iterator[Any]:
    query = select(
        col(Task.id), col(Task.task_type), col(Task.payload), col(Task.model_override), col(Task.attempts)
    ).where(col(Task.status) == TaskStatus.QUEUED)
    if task_types:
        query = query.where(col(Task.task_type).in_(task_types))
    with services.engine.connect() as conn:
        yield from conn.execution_options(yield_per=2000).execute(query)


def forecast_queue(services: Services, task_types: list[str] | None = None) -> Forecast:
    """Forecast the batch cost of every queued task (of ``task_types``, if given)."""
    forecast = Forecast()
    builder = RequestBuilder()
    prefixes = {}
    for row in _queued(services, task_types):
        if row.task_type not in services.registry:
            continue
        task_type = services.registry.get(row.task_type)
        model = choose_model(task_type, override=row.model_override)
        request = builder.build(row.id, row.attempts, task_type, model, row.payload)
        group = forecast.groups.setdefault((task_type.name, model), GroupForecast())
        prefixes[(task_type.name, model)] = request.prefix
        group.tasks += 1
        group.tail_tokens += request.tail_tokens
        group.max_output_tokens += task_type.max_tokens
    sizer = PrefixSizer(None)  # local estimate: forecasting must not depend on the API being up
    for (type_name, model), group in forecast.groups.items():
        price = services.prices.price(model)
        decision = decide_ttl(
            model=model,
            prices=services.prices,
            prefix_tokens=sizer.tokens(prefixes[(type_name, model)]),
            requests=group.tasks,
            mode=services.registry.get(type_name).cache.mode,
        )
        group.prefix_usd = Decimal(decision.cost_usd[decision.option])
        tail = group.tail_tokens * price.input / _MTOK * BATCH_DISCOUNT
        output = group.max_output_tokens * price.output / _MTOK * BATCH_DISCOUNT
        forecast.total_usd += group.prefix_usd + tail + output
        forecast.tasks += group.tasks
    return forecast
