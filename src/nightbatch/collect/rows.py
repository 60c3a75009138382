"""The rows one chunk of results adds, and the output shards their lines go to.

For each result line :class:`ChunkRows` decides the task's fate (:mod:`nightbatch.collect.outcome`), bills
it (one ledger row, priced once per usage shape) and records the attempt; a succeeded result's output
becomes one line of its task type's shard (:class:`Shards`). Nothing here touches the database: the rows are
written by :class:`~nightbatch.collect.bulk.ChunkWriter`.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import date
from typing import TYPE_CHECKING, Any, BinaryIO

from nightbatch import fastjson
from nightbatch.collect.lookup import FoundTask
from nightbatch.collect.outcome import check_output, decide
from nightbatch.db.models import Batch, TaskStatus, UsagePurpose
from nightbatch.pricing import Usage, price_usage, pusd_to_usd
from nightbatch.quality.checks import CheckResult
from nightbatch.services import Services
from nightbatch.tasktypes import TaskType

if TYPE_CHECKING:
    from nightbatch.collect.ingest import IngestReport

__all__ = ["INLINE_LIMIT", "ChunkRows", "Shards", "UsageShape", "shard_key"]

INLINE_LIMIT = 512


def shard_key(task_type: str, day: date, batch_id: int) -> str:
    return f"outputs/task_type={task_type}/date={day:%Y-%m-%d}/batch-{batch_id}.jsonl"


class Shards:
    """One spooling writer per task type, opened on first use, published when the ExitStack closes."""

    def __init__(self, services: Services, stack: ExitStack, batch_id: int, day: date) -> None:
        self._services, self._stack, self._batch_id, self._day = services, stack, batch_id, day
        self._open: dict[str, tuple[BinaryIO, str, list[int]]] = {}

    def append(self, task_type: str, record: dict[str, Any]) -> tuple[str, int]:
        if task_type not in self._open:
            key = shard_key(task_type, self._day, self._batch_id)
            writer = self._stack.enter_context(self._services.store.writer(key, content_type="application/jsonl"))
            self._open[task_type] = (writer, self._services.store.uri(key), [0])
        writer, uri, counter = self._open[task_type]
        writer.write(fastjson.dumps_line(record))
        counter[0] += 1
        return uri, counter[0]


def _inline(output: Any) -> str | None:
    """``output`` as a JSON column stores it (JSON text), when short enough to keep inline; else None."""
    if output is None or (isinstance(output, str) and len(output) + 2 > INLINE_LIMIT):
        return None  # a string's JSON is at least two characters longer than the string
    if len(json.dumps(output, ensure_ascii=False)) > INLINE_LIMIT:
        return None
    return json.dumps(output)  # exactly what SQLAlchemy's JSON type would have stored


def _type_or_none(services: Services, name: str) -> TaskType | None:
    return services.registry.get(name) if name in services.registry else None


UsageShape = tuple[Any, ...]


def _usage_shape(model: str, usage: dict[str, Any]) -> UsageShape:
    """Everything :meth:`Usage.from_api` reads from a (checked) usage object, as a hashable key."""
    get, creation = usage.get, usage.get("cache_creation")
    split = (
        None
        if creation is None
        else (creation.get("ephemeral_5m_input_tokens"), creation.get("ephemeral_1h_input_tokens"))
    )
    return (model, get("input_tokens"), get("output_tokens"), get("cache_read_input_tokens"),
            get("cache_creation_input_tokens"), split)  # fmt: skip


class ChunkRows:
    """The rows one chunk of results adds: task updates, usage (ledger) rows and attempt rows."""

    def __init__(self, services: Services, batch: Batch, shards: Shards, report: IngestReport,
                 priced: dict[UsageShape, tuple[Usage, int]]) -> None:  # fmt: skip
        self.services, self.batch, self.shards, self.report = services, batch, shards, report
        self.updates: list[dict[str, Any]] = []
        self.usage: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self._priced = priced  # shared by the chunks of one ingest

    def bill(self, task: FoundTask, message: dict[str, Any], purpose: UsagePurpose) -> tuple[str, int]:
        """One ledger row for a billed result; returns (model, cost in picodollars)."""
        model = str(message.get("model") or task.model or self.batch.model)
        raw = message.get("usage") or {}
        shape = _usage_shape(model, raw)
        known = self._priced.get(shape)
        if known is None:  # the results of a batch share few usage shapes: read and price each once
            usage = Usage.from_api(raw)
            known = self._priced[shape] = (usage, price_usage(self.services.prices, model, usage, "batch").total_pusd)
        usage, cost = known
        self.report.cost_pusd += cost
        self.usage.append({
            "task_id": task.id, "batch_id": self.batch.id, "run_id": self.batch.run_id, "model": model,
            "service_tier": "batch", "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cache_write_5m_tokens": usage.cache_write_5m_tokens, "cache_write_1h_tokens": usage.cache_write_1h_tokens,
            "cache_read_tokens": usage.cache_read_tokens, "price_version": self.services.prices.version,
            "cost_pusd": cost, "purpose": purpose,
        })  # fmt: skip
        return model, cost

    def attempt(self, task: FoundTask, custom_id: str, model: str, purpose: UsagePurpose, result_type: str,
                check: CheckResult | None, output: Any) -> None:  # fmt: skip
        self.attempts.append({
            "task_id": task.id, "task_type": task.task_type, "attempt": task.attempts, "model": model,
            "purpose": purpose, "batch_id": self.batch.id, "custom_id": custom_id, "calibration_id": None,
            "result_type": result_type, "check_passed": None if check is None else check.passed,
            "check_reason": None if check is None else check.reason, "output": _inline(output),
        })  # fmt: skip

    def routine(self, task: FoundTask, line: dict[str, Any]) -> None:
        """A result for the task's own request: decide its fate, bill it, write its shard line."""
        result = line.get("result") or {}
        task_type = _type_or_none(self.services, task.task_type)
        message = result.get("message") or {}
        model = str(message.get("model") or task.model or self.batch.model)
        decision = decide(
            result,
            attempts=task.attempts,
            max_attempts=self.services.settings.max_attempts,
            user_canceled=bool(task.user_canceled),
            task_type=task_type,
            model=model,
            payload=task.payload,
        )
        self.report.count("escalated" if decision.escalate_to else decision.status.value)
        output_uri = output_line = inline = None
        if decision.billed:
            model, cost = self.bill(task, message, UsagePurpose.TASK)
            passed = decision.check is not None and decision.check.passed
            output_uri, output_line = self.shards.append(task.task_type, {
                "task_id": task.id, "custom_id": task.custom_id, "task_type": task.task_type, "model": model,
                "batch_id": self.batch.provider_batch_id, "passed": passed,
                "output": decision.output, "stop_reason": message.get("stop_reason"), "usage": message.get("usage"),
                "cost_usd": str(pusd_to_usd(cost)),
            })  # fmt: skip
            inline = _inline(decision.output)
        self.attempt(task, line["custom_id"], model, UsagePurpose.TASK, str(result.get("type")), decision.check,
                     decision.output)  # fmt: skip
        requeued = decision.status == TaskStatus.QUEUED
        self.updates.append({
            "b_id": task.id, "b_batch": self.batch.id, "b_status": decision.status, "b_attempts": decision.attempts,
            "b_error_type": decision.error_type, "b_error_message": (decision.error_message or "")[:2000] or None,
            "b_output_uri": output_uri, "b_output_line": output_line, "b_output_inline": inline,
            "b_new_batch": None if requeued else self.batch.id,
            "b_new_custom_id": None if requeued else task.custom_id,
            "b_route": decision.escalate_to or task.route_model,
        })  # fmt: skip

    def orphan(self, task: FoundTask, line: dict[str, Any]) -> None:
        """A result of a batch no task points at any more: billed all the same, so it is recorded and reported."""
        result = line.get("result") or {}
        model = self.batch.model
        if result.get("type") == "succeeded":
            model, _ = self.bill(task, result.get("message") or {}, UsagePurpose.ORPHAN)
        self.report.count("orphan")
        self.attempt(task, line["custom_id"], model, UsagePurpose.ORPHAN, str(result.get("type")), None, None)

    def shadow(self, task: FoundTask, line: dict[str, Any]) -> None:
        """A shadow result (the same task on the next rung up): measured and billed, the task untouched."""
        result = line.get("result") or {}
        message = result.get("message") or {}
        task_type = _type_or_none(self.services, task.task_type)
        model = str(message.get("model") or self.batch.model)
        output, check = None, None
        if result.get("type") == "succeeded":
            output, check = check_output(message, task_type, task.payload)
            model, _ = self.bill(task, message, UsagePurpose.SHADOW)
        self.report.count("shadow")
        self.attempt(task, line["custom_id"], model, UsagePurpose.SHADOW, str(result.get("type")), check, output)
