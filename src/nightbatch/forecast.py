"""Forecasting what work will cost before anything is sent: for the queue, or for a file not yet enqueued.

Per (task type, model) group:

- **prompt tokens**: the shared prefix is counted once by the token-counting endpoint (free); per-task
  tokens are estimated locally for every task and calibrated against the endpoint on a sample of the
  group's requests (``sample_per_group``), so large backfills cost a handful of counting calls;
- **cache**: the prefix is priced by the same TTL decision the submitter will make;
- **output**: ``max_tokens`` gives the upper bound; the expected figure uses the mean output of the
  type on that model from the ledger when there is history, else the upper bound;
- **thinking** (billed as output, inside ``max_tokens``): per task, none when the type's requests do not
  think (``thinking = "disabled"``, or a model that does not think by default and no setting); else the
  type's mean ``thinking_tokens`` on that model from the ledger, else the stated default
  :data:`~nightbatch.thinking.DEFAULT_THINKING_TOKENS` (a budget's size when the type sets one), capped
  at ``max_tokens``. The expected output is the visible part of the history plus that thinking;
- **geo and band**: a type with ``inference_geo = "us"`` pays 1.1x; a request whose prompt exceeds its
  model's long-prompt threshold is priced at the band's rates (on input, tails and output).

All at batch prices. Without an API (or when counting fails) local estimates are used and said so.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from nightbatch.build.cache_ttl import decide_ttl
from nightbatch.build.prefix import Prefix
from nightbatch.build.requests import BuiltRequest, RequestBuilder
from nightbatch.catalog import model_info
from nightbatch.db.models import Task, TaskStatus, UsagePurpose, UsageRecord
from nightbatch.errors import ProviderError
from nightbatch.pricing import BATCH_DISCOUNT, geo_multiplier
from nightbatch.route import choose_model
from nightbatch.services import Services
from nightbatch.submit.plan import PrefixSizer
from nightbatch.thinking import expected_thinking_tokens

__all__ = ["Forecast", "Forecaster", "GroupForecast", "forecast_queue"]

_MTOK = Decimal(1_000_000)


@dataclass
class GroupForecast:
    task_type: str
    model: str
    tasks: int = 0
    tail_tokens_estimated: int = 0
    max_output_tokens: int = 0
    prefix_tokens: int = 0
    tail_tokens: int = 0
    expected_output_tokens: int = 0
    expected_thinking_tokens: int = 0
    """Of ``expected_output_tokens``, those expected to be thinking (billed as output)."""
    cache_option: str = "none"
    expected_usd: Decimal = Decimal(0)
    upper_bound_usd: Decimal = Decimal(0)
    counted: bool = False
    sample: list[BuiltRequest] = field(default_factory=list)
    prefix: Prefix | None = None


@dataclass
class Forecast:
    groups: list[GroupForecast] = field(default_factory=list)
    skipped: int = 0

    @property
    def tasks(self) -> int:
        return sum(g.tasks for g in self.groups)

    @property
    def expected_usd(self) -> Decimal:
        return sum((g.expected_usd for g in self.groups), Decimal(0))

    @property
    def upper_bound_usd(self) -> Decimal:
        return sum((g.upper_bound_usd for g in self.groups), Decimal(0))

    @property
    def total_usd(self) -> Decimal:
        return self.upper_bound_usd

    @property
    def thinking_tokens(self) -> int:
        return sum(g.expected_thinking_tokens for g in self.groups)

    def describe(self) -> str:
        counted = "token counts from the API" if all(g.counted for g in self.groups) else "local token estimates"
        thinking = f", of which ~{self.thinking_tokens:,} thinking output tokens" if self.thinking_tokens else ""
        return (
            f"{self.tasks:,} tasks: expected ${self.expected_usd:,.4f}{thinking}, at most "
            f"${self.upper_bound_usd:,.4f} at batch prices ({counted})"
        )


def _historical_output(services: Services, task_type: str, model: str) -> tuple[float, float] | None:
    """Mean (output, thinking) tokens of the type's task responses on ``model``, or None without history."""
    query = (
        select(func.avg(UsageRecord.output_tokens), func.avg(UsageRecord.thinking_tokens))
        .join(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(
            col(Task.task_type) == task_type,
            col(UsageRecord.model) == model,
            col(UsageRecord.purpose) == UsagePurpose.TASK,
        )
    )
    with services.engine.connect() as conn:
        output, thinking = conn.execute(query).one()
    return None if output is None else (float(output), float(thinking or 0))


class Forecaster:
    """Accumulates tasks, then prices them (see the module docstring)."""

    def __init__(self, services: Services, *, use_api: bool = True, sample_per_group: int = 20) -> None:
        self._services = services
        self._use_api = use_api
        self._sample = sample_per_group
        self._builder = RequestBuilder()
        self._groups: dict[tuple[str, str], GroupForecast] = {}
        self.skipped = 0

    def add(self, task_id: int, task_type_name: str, payload: dict[str, Any], override: str | None = None) -> None:
        if task_type_name not in self._services.registry:
            self.skipped += 1
            return
        task_type = self._services.registry.get(task_type_name)
        model = choose_model(task_type, override=override)
        request = self._builder.build(task_id, 1, task_type, model, payload)
        group = self._groups.setdefault((task_type.name, model), GroupForecast(task_type.name, model))
        group.prefix = request.prefix
        group.tasks += 1
        group.tail_tokens_estimated += request.tail_tokens
        group.max_output_tokens += task_type.max_tokens
        if len(group.sample) < self._sample:
            group.sample.append(request)

    def _count_tails(self, group: GroupForecast) -> int:
        """Per-task prompt tokens of the group, calibrated on the sample when the API can count."""
        if not self._use_api or not group.sample:
            return group.tail_tokens_estimated
        try:
            counted = sum(self._services.client.count_tokens(r.params(None)) for r in group.sample)
        except ProviderError:
            return group.tail_tokens_estimated
        estimated = sum(r.tail_tokens for r in group.sample)
        counted_tails = max(0, counted - group.prefix_tokens * len(group.sample))
        group.counted = True
        ratio = Decimal(counted_tails) / Decimal(estimated) if estimated else Decimal(1)
        return int(Decimal(group.tail_tokens_estimated) * ratio)

    def result(self) -> Forecast:
        forecast = Forecast(skipped=self.skipped)
        sizer = PrefixSizer(self._services.client if self._use_api else None)
        for group in self._groups.values():
            assert group.prefix is not None
            task_type = self._services.registry.get(group.task_type)
            group.prefix_tokens = sizer.tokens(group.prefix)
            group.tail_tokens = self._count_tails(group)
            prompt_per_task = group.prefix_tokens + group.tail_tokens // max(group.tasks, 1)
            price = self._services.prices.price(group.model).for_prompt(prompt_per_task)
            geo = geo_multiplier(task_type.inference_geo)
            decision = decide_ttl(
                model=group.model,
                prices=self._services.prices,
                prefix_tokens=group.prefix_tokens,
                requests=group.tasks,
                concurrency=16,
                mode=self._services.registry.get(group.task_type).cache.mode,
            )
            group.cache_option = decision.option
            history = _historical_output(self._services, group.task_type, group.model)
            per_task_max = group.max_output_tokens / group.tasks
            thinking = expected_thinking_tokens(
                model_info(group.model), task_type.thinking, task_type.max_tokens,
                history=history[1] if history is not None and history[1] > 0 else None,
            )  # fmt: skip
            visible = history[0] - history[1] if history is not None else per_task_max
            expected_out = min(visible + thinking, per_task_max)
            group.expected_output_tokens = int(expected_out * group.tasks)
            group.expected_thinking_tokens = int(min(thinking, expected_out) * group.tasks)
            fixed = Decimal(decision.cost_usd[decision.option]) * geo + (
                group.tail_tokens * price.input / _MTOK * BATCH_DISCOUNT * geo
            )
            group.expected_usd = fixed + group.expected_output_tokens * price.output / _MTOK * BATCH_DISCOUNT * geo
            group.upper_bound_usd = fixed + group.max_output_tokens * price.output / _MTOK * BATCH_DISCOUNT * geo
            group.sample = []
            forecast.groups.append(group)
        return forecast


def _queued(services: Services, task_types: list[str] | None) -> Iterator[Any]:
    query = select(col(Task.id), col(Task.task_type), col(Task.payload), col(Task.model_override)).where(
        col(Task.status) == TaskStatus.QUEUED
    )
    if task_types:
        query = query.where(col(Task.task_type).in_(task_types))
    with services.engine.connect() as conn:
        yield from conn.execution_options(yield_per=2000).execute(query)


def forecast_queue(services: Services, task_types: list[str] | None = None, *, use_api: bool = True) -> Forecast:
    """Forecast the batch cost of every queued task (of ``task_types``, if given)."""
    return forecast_tasks(services, _queued(services, task_types), use_api=use_api)


def forecast_tasks(services: Services, tasks: Iterable[Any], *, use_api: bool = True) -> Forecast:
    """Forecast ``(id, task_type, payload, model_override)`` rows (from the queue or from a file)."""
    forecaster = Forecaster(services, use_api=use_api)
    for task_id, task_type, payload, override in tasks:
        forecaster.add(task_id, task_type, payload, override)
    return forecaster.result()
