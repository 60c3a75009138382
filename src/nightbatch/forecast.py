"""Forecasting what work will cost before anything is sent: for the queue, or for a file not yet enqueued.

Per (task type, model) group:

- **prompt tokens**: the shared prefix is counted once by the token-counting endpoint (free); per-task
  tokens are estimated locally for every task and calibrated against the endpoint on a sample of the
  group's requests (``sample_per_group``), so large backfills cost a handful of counting calls;
- **cache**: the prefix is priced by the same decision the submitter will make (pilot then fan-out, reads
  of a known live entry, or no caching), at the hit rate measured for the group;
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

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nightbatch.build.cache_ttl import plan_group
from nightbatch.build.prefix import Prefix
from nightbatch.build.requests import BuiltRequest, RequestBuilder
from nightbatch.catalog import model_info
from nightbatch.db.cache_entries import group_states, measured_hit_rate
from nightbatch.db.models import utcnow
from nightbatch.db.queries.history import output_history
from nightbatch.db.queries.queue import queued_tasks
from nightbatch.errors import ProviderError
from nightbatch.pricing import BATCH_DISCOUNT, geo_multiplier
from nightbatch.report.prefix import padding_advice
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
    fallback_worst_usd: Decimal = Decimal(0)
    """For ``on_deadline = "realtime"`` types: every task real-time, uncached, ``max_tokens`` out, standard prices."""
    counted: bool = False
    sample: list[BuiltRequest] = field(default_factory=list)
    prefix: Prefix | None = None


@dataclass
class Forecast:
    groups: list[GroupForecast] = field(default_factory=list)
    skipped: int = 0
    advice: list[str] = field(default_factory=list)
    """Padding advice for prefixes below their model's minimum cacheable length."""

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
    def fallback_worst_usd(self) -> Decimal:
        return sum((g.fallback_worst_usd for g in self.groups), Decimal(0))

    @property
    def total_usd(self) -> Decimal:
        return self.upper_bound_usd

    @property
    def thinking_tokens(self) -> int:
        return sum(g.expected_thinking_tokens for g in self.groups)

    def describe(self) -> str:
        counted = "token counts from the API" if all(g.counted for g in self.groups) else "local token estimates"
        thinking = f", of which ~{self.thinking_tokens:,} thinking output tokens" if self.thinking_tokens else ""
        fallback = (
            f"; if every batch missed its deadline, the real-time fallback (on_deadline = realtime) would cost at "
            f"most ${self.fallback_worst_usd:,.4f} more at standard prices"
            if self.fallback_worst_usd
            else ""
        )
        return (
            f"{self.tasks:,} tasks: expected ${self.expected_usd:,.4f}{thinking}, at most "
            f"${self.upper_bound_usd:,.4f} at batch prices ({counted}){fallback}"
        )


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
            key = (group.model, group.prefix.hash)
            state = group_states(self._services.engine, [key])[key]
            measured = measured_hit_rate(self._services.engine, *key)
            decision = plan_group(
                model=group.model,
                prices=self._services.prices,
                prefix_tokens=group.prefix_tokens,
                requests=group.tasks,
                mode=self._services.registry.get(group.task_type).cache.mode,
                hit_rate=None if measured is None else measured.rate,
                live_minutes=state.live_minutes(utcnow()),
                live_ttl_minutes=state.ttl_minutes,
                pilot_running=state.pilot_running,
                pilot_failures=state.pilot_failures,
            )
            # A group waiting for its running pilot will be sent as a fan-out that reads.
            option = "warm" if decision.option == "wait" else decision.option
            group.cache_option = option
            history = output_history(self._services.engine, group.task_type, group.model)
            per_task_max = group.max_output_tokens / group.tasks
            thinking = expected_thinking_tokens(
                model_info(group.model), task_type.thinking, task_type.max_tokens,
                history=history.thinking_tokens if history is not None and history.thinking_tokens > 0 else None,
            )  # fmt: skip
            visible = history.output_tokens - history.thinking_tokens if history is not None else per_task_max
            expected_out = min(visible + thinking, per_task_max)
            group.expected_output_tokens = int(expected_out * group.tasks)
            group.expected_thinking_tokens = int(min(thinking, expected_out) * group.tasks)
            fixed = Decimal(decision.cost_usd[option]) * geo + (
                group.tail_tokens * price.input / _MTOK * BATCH_DISCOUNT * geo
            )
            group.expected_usd = fixed + group.expected_output_tokens * price.output / _MTOK * BATCH_DISCOUNT * geo
            group.upper_bound_usd = fixed + group.max_output_tokens * price.output / _MTOK * BATCH_DISCOUNT * geo
            if task_type.on_deadline == "realtime":
                # Worst case: none of the batch finished in time and every task went real-time uncached.
                prompt = group.prefix_tokens * group.tasks + group.tail_tokens
                group.fallback_worst_usd = (prompt * price.input + group.max_output_tokens * price.output) / _MTOK * geo
            group.sample = []
            forecast.groups.append(group)
            advice = padding_advice(
                group.task_type, group.model, group.prefix_tokens, group.tasks, self._services.prices,
                hit_rate=None if measured is None else measured.rate,
            )  # fmt: skip
            if advice is not None:
                forecast.advice.append(advice.text())
        return forecast


def forecast_queue(services: Services, task_types: list[str] | None = None, *, use_api: bool = True) -> Forecast:
    """Forecast the batch cost of every queued task (of ``task_types``, if given)."""
    rows = ((t.id, t.task_type, t.payload, t.model_override) for t in queued_tasks(services.engine, task_types))
    return forecast_tasks(services, rows, use_api=use_api)


def forecast_tasks(services: Services, tasks: Iterable[Any], *, use_api: bool = True) -> Forecast:
    """Forecast ``(id, task_type, payload, model_override)`` rows (from the queue or from a file)."""
    forecaster = Forecaster(services, use_api=use_api)
    for task_id, task_type, payload, override in tasks:
        forecaster.add(task_id, task_type, payload, override)
    return forecaster.result()
