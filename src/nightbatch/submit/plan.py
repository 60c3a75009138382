"""From claimed tasks to built requests: route each task, trim and render it, size shared prefixes.

A task that cannot be built (a template field its payload lacks) fails alone with the reason; the
rest go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from nightbatch import custom_ids
from nightbatch.build.context import estimate_tokens
from nightbatch.build.prefix import Prefix
from nightbatch.build.requests import BuiltRequest, RequestBuilder
from nightbatch.claude import ClaudeClient
from nightbatch.errors import InputError, ProviderError
from nightbatch.quality.shadow import in_shadow_sample
from nightbatch.queue.claim import ClaimedTask
from nightbatch.route import choose_model, next_rung
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["BuildFailure", "Plan", "PrefixSizer", "plan_requests"]

_PROBE = [{"role": "user", "content": "."}]


class PrefixSizer:
    """Prompt tokens of each shared prefix, counted once per prefix by the token-counting endpoint."""

    def __init__(self, client: ClaudeClient | None) -> None:
        self._client = client
        self._sizes: dict[str, int] = {}

    def tokens(self, prefix: Prefix) -> int:
        if prefix.hash not in self._sizes:
            self._sizes[prefix.hash] = self._count(prefix)
        return self._sizes[prefix.hash]

    def _count(self, prefix: Prefix) -> int:
        if prefix.is_empty:
            return 0
        estimate = estimate_tokens([list(prefix.tools), list(prefix.system_blocks)])
        if self._client is None:
            return estimate
        try:
            with_prefix = self._client.count_tokens({"model": prefix.model, **prefix.render(None), "messages": _PROBE})
            probe_only = self._client.count_tokens({"model": prefix.model, "messages": _PROBE})
        except ProviderError:
            # Counting is advisory (it only sizes the TTL decision); an estimate is good enough.
            return estimate
        return max(0, with_prefix - probe_only)


@dataclass(frozen=True)
class BuildFailure:
    task_id: int
    error_type: str
    message: str


@dataclass
class Plan:
    requests: list[BuiltRequest] = field(default_factory=list)
    failures: list[BuildFailure] = field(default_factory=list)
    trimmed_tokens: int = 0
    shadows: int = 0


def plan_requests(
    tasks: Iterable[ClaimedTask],
    registry: TaskTypeRegistry,
    builder: RequestBuilder,
    *,
    calibrated: Mapping[str, str] | None = None,
) -> Plan:
    """Route and build a request for each task (plus a shadow request for the types' shadow samples).

    ``calibrated`` maps a task type to the model its latest applied calibration chose.
    """
    plan = Plan()
    calibrated = calibrated or {}
    for task in tasks:
        try:
            task_type = registry.get(task.task_type)
            model = choose_model(
                task_type,
                override=task.model_override,
                route=task.route_model,
                calibrated=calibrated.get(task.task_type),
            )
            # The attempt this request will be if it is sent (attempts counts the sends before it).
            request = builder.build(task.id, task.attempts + 1, task_type, model, task.payload)
        except InputError as exc:
            plan.failures.append(BuildFailure(task.id, "invalid_task", str(exc)))
            continue
        plan.requests.append(request)
        plan.trimmed_tokens += request.trimmed_tokens
        above = next_rung(task_type, model)
        if above is not None and in_shadow_sample(task.id, task_type.routing.shadow_fraction):
            shadow = builder.build(task.id, task.attempts + 1, task_type, above, task.payload)
            shadow_id = custom_ids.build(custom_ids.Kind.SHADOW, task.id, task.attempts + 1)
            plan.requests.append(replace(shadow, custom_id=shadow_id))
            plan.shadows += 1
    return plan
