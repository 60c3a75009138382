"""The rows one chunk of results adds, and the output shards their lines go to.

For each result line :class:`ChunkRows` decides the task's fate (:mod:`nightbatch.collect.outcome`), bills
it (one ledger row, priced once per usage shape) and records the attempt; a succeeded result's output
becomes one line of its task type's shard (:class:`Shards`). Nothing here touches the database: the rows
(immutable typed rows, :class:`~nightbatch.db.ledger.UsageRow`, :class:`~nightbatch.db.ledger.AttemptRow` and
:class:`~nightbatch.db.ingest_writes.TaskResult`) are written by :class:`~nightbatch.db.ingest_writes.ChunkWriter`.

Billing a result (one ``usage_record`` row):

* priced with the price row in force on the day the batch **ended** (when the provider billed it), a
  dated model id as its catalog entry (the ledger records the catalog id);
* at 1.1x when it ran with ``inference_geo = "us"``: the usage's own ``inference_geo`` when it reports
  one, else what the task type asked for; the value is recorded;
* ``thinking_tokens`` (the part of ``output_tokens`` spent thinking): the usage's
  ``output_tokens_details.thinking_tokens`` when the API gives it (SDK 2.x ``OutputTokensDetails``);
  otherwise estimated from the thinking blocks of the content (their text at ~4 bytes per token, capped
  at ``output_tokens``; a ``redacted_thinking`` block's size is unknowable and counts 0). Always inside
  ``output_tokens``, never added to it: thinking is billed as output;
* a model the price table has no row for (or none yet on the billing day) is booked **unpriced**: its
  tokens recorded, ``cost_pusd`` NULL (never $0), counted in the ingest report by model.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from nightbatch import fastjson
from nightbatch.build.context import estimate_tokens
from nightbatch.catalog import canonical_model
from nightbatch.collect.outcome import check_output, decide
from nightbatch.db.bulk import row_timestamp
from nightbatch.db.ingest_lookup import FoundTask
from nightbatch.db.ingest_writes import TaskResult
from nightbatch.db.ledger import AttemptRow, UsageRow, json_text
from nightbatch.db.models import Batch, ServiceTier, TaskStatus, UsagePurpose
from nightbatch.errors import ConfigError
from nightbatch.pricing import Usage, price_usage, pusd_to_usd
from nightbatch.quality.checks import CheckResult
from nightbatch.services import Services
from nightbatch.tasktypes import TaskType

if TYPE_CHECKING:
    from nightbatch.collect.ingest import IngestReport
    from nightbatch.pipeline.downstream import Downstream

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


def _usage_shape(model: str, usage: dict[str, Any], geo: str | None) -> UsageShape:
    """Everything the price of a (checked) usage object depends on, as a hashable key."""
    get, creation = usage.get, usage.get("cache_creation")
    split = (
        None
        if creation is None
        else (creation.get("ephemeral_5m_input_tokens"), creation.get("ephemeral_1h_input_tokens"))
    )
    return (model, get("input_tokens"), get("output_tokens"), get("cache_read_input_tokens"),
            get("cache_creation_input_tokens"), split, geo)  # fmt: skip


def thinking_tokens(message: dict[str, Any], usage: dict[str, Any], output_tokens: int) -> int:
    """The part of ``output_tokens`` spent thinking (see the module docstring for where it comes from)."""
    details = usage.get("output_tokens_details")
    if isinstance(details, dict):
        reported = details.get("thinking_tokens")
        if isinstance(reported, int) and not isinstance(reported, bool) and reported >= 0:
            return min(reported, output_tokens)
    blocks = message.get("content") or []
    texts = [b.get("thinking") for b in blocks if isinstance(b, dict) and b.get("type") == "thinking"]
    estimated = sum(estimate_tokens(t) for t in texts if isinstance(t, str) and t)
    return min(estimated, output_tokens)


class ChunkRows:
    """The rows one chunk of results adds: task updates, usage (ledger) rows and attempt rows."""

    def __init__(self, services: Services, batch: Batch, shards: Shards, report: IngestReport,
                 priced: dict[UsageShape, tuple[Usage, int | None]],
                 downstream: Downstream | None = None) -> None:  # fmt: skip
        self.services, self.batch, self.shards, self.report = services, batch, shards, report
        self.downstream = downstream  # told of each succeeded result (pipeline stages, twins); None: nobody asks
        self.updates: list[TaskResult] = []
        self.usage: list[UsageRow] = []
        self.attempts: list[AttemptRow] = []
        self._priced = priced  # shared by the chunks of one ingest
        # Billed when the batch ended (results exist only then); "now" for a batch without the timestamp.
        self.billed_at = batch.ended_at or datetime.now(UTC)
        self._billed_at_value = row_timestamp(services.engine.dialect, self.billed_at)

    def _price(self, model: str, usage: Usage, geo: str | None) -> int | None:
        """The batch cost of one response, or None (unpriced) when the table has no row for it that day."""
        if not self.services.prices.knows(model):
            return None
        try:
            return price_usage(self.services.prices, model, usage, "batch", self.billed_at.date(),
                               inference_geo=geo).total_pusd  # fmt: skip
        except ConfigError:  # every row of the model starts after the billing day: no price, not $0
            return None

    def bill(self, task: FoundTask, message: dict[str, Any], purpose: UsagePurpose,
             model: str | None = None) -> tuple[str, int | None]:  # fmt: skip
        """One ledger row for a billed result; returns (model, cost in picodollars or None if unpriced).

        ``model``: the model to book it under; by default the one the message names (as the catalog names it).
        """
        model = model or canonical_model(str(message.get("model") or task.model or self.batch.model))
        raw = message.get("usage") or {}
        task_type = _type_or_none(self.services, task.task_type)
        reported_geo = raw.get("inference_geo")
        geo = reported_geo if isinstance(reported_geo, str) else (task_type.inference_geo if task_type else None)
        shape = _usage_shape(model, raw, geo)
        known = self._priced.get(shape)
        if known is None:  # the results of a batch share few usage shapes: read and price each once
            usage = Usage.from_api(raw)
            known = self._priced[shape] = (usage, self._price(model, usage, geo))
        usage, cost = known
        if cost is None:
            self.report.unpriced[model] = self.report.unpriced.get(model, 0) + 1
        else:
            self.report.cost_pusd += cost
        self.usage.append(UsageRow(
            task_id=task.id, batch_id=self.batch.id, run_id=self.batch.run_id, model=model,
            service_tier=ServiceTier.BATCH, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_write_5m_tokens=usage.cache_write_5m_tokens, cache_write_1h_tokens=usage.cache_write_1h_tokens,
            cache_read_tokens=usage.cache_read_tokens, price_version=self.services.prices.version,
            cost_pusd=cost, purpose=purpose,
            thinking_tokens=thinking_tokens(message, raw, usage.output_tokens), inference_geo=geo,
            billed_at=self._billed_at_value,
        ))  # fmt: skip
        return model, cost

    def attempt(self, task: FoundTask, custom_id: str, model: str, purpose: UsagePurpose, result_type: str,
                check: CheckResult | None, output: str | None, *, attempt: int | None = None,
                calibration_id: int | None = None) -> None:  # fmt: skip
        """One attempt row; ``output`` as JSON text (:func:`_inline`, or the whole of a calibration probe's)."""
        self.attempts.append(AttemptRow(
            task_id=task.id, task_type=task.task_type, attempt=task.attempts if attempt is None else attempt,
            model=model, purpose=purpose, batch_id=self.batch.id, custom_id=custom_id, calibration_id=calibration_id,
            result_type=result_type, check_passed=None if check is None else check.passed,
            check_reason=None if check is None else check.reason, output=output,
        ))  # fmt: skip

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
                "cost_usd": None if cost is None else str(pusd_to_usd(cost)),
            })  # fmt: skip
            inline = _inline(decision.output)
        kept = inline if decision.billed else _inline(decision.output)  # the same text: written once
        self.attempt(task, line["custom_id"], model, UsagePurpose.TASK, str(result.get("type")), decision.check,
                     kept)  # fmt: skip
        if self.downstream is not None and decision.status == TaskStatus.SUCCEEDED:
            self.downstream.note(task.id, task.task_type, task.payload, decision.output)
        requeued = decision.status == TaskStatus.QUEUED
        assert self.batch.id is not None
        self.updates.append(TaskResult(
            id=task.id, batch=self.batch.id, status=decision.status, attempts=decision.attempts,
            error_type=decision.error_type, error_message=(decision.error_message or "")[:2000] or None,
            output_uri=output_uri, output_line=output_line, output_inline=inline,
            new_batch=None if requeued else self.batch.id,
            new_custom_id=None if requeued else task.custom_id,
            route=decision.escalate_to or task.route_model,
        ))  # fmt: skip

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
        self.attempt(task, line["custom_id"], model, UsagePurpose.SHADOW, str(result.get("type")), check,
                     _inline(output))  # fmt: skip

    def calibration(self, task: FoundTask, line: dict[str, Any]) -> None:
        """A calibration probe (the task sent unchanged to one candidate): scored and billed, the task untouched.

        Booked under the batch's model, the candidate it measures; its whole output is kept, for agreement.
        """
        result = line.get("result") or {}
        task_type = _type_or_none(self.services, task.task_type)
        output, check = None, None
        if result.get("type") == "succeeded":
            message = result.get("message") or {}
            output, check = check_output(message, task_type, task.payload)
            self.bill(task, message, UsagePurpose.CALIBRATION, model=self.batch.model)
        self.report.count("calibration")
        self.attempt(task, line["custom_id"], self.batch.model, UsagePurpose.CALIBRATION, str(result.get("type")),
                     check, json_text(output), attempt=0, calibration_id=self.batch.calibration_id)  # fmt: skip
