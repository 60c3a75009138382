"""Calibration: send the same sample to every candidate model and route to the cheapest that meets the bar.

1. :func:`start_calibration` picks ``sample`` tasks of a type (lowest ids first, any status) and sends
   them, unchanged, to each candidate model as one batch per model (``purpose = calibration``; custom_ids
   ``c<task id>``). The tasks themselves are not touched.
2. :func:`finish_calibration`, once every batch has ended, scores each model's outputs by the type's
   checks and by agreement — with the payload's ``reference_field`` when the type names one, else with
   the top candidate's answers — and prices them from the usage the API returned. Every probe is kept
   as a ``task_attempt`` row and billed in the ledger (``purpose = calibration``).
3. The cheapest model whose pass rate (and agreement, when measured) reaches the type's
   ``routing.threshold`` is recommended; :func:`apply_calibration` makes it the type's route. Below the
   bar everywhere, nothing is recommended.

Candidates are ordered by tier, then by price (output, then input), so two models of one tier side by
side (Haiku 4.5 and Haiku 5.5) are tried cheapest first. Each is sent the type's own settings (thinking,
effort, structured output where the model supports it), and priced from the usage it returned, so the
newer tokenizer's larger counts and any thinking are in its measured cost per task, at the prices in
force when its batch ended.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlmodel import Session, col

from nightbatch import custom_ids
from nightbatch.build.requests import RequestBuilder
from nightbatch.catalog import model_info
from nightbatch.claude.client import not_visible_yet
from nightbatch.collect.outcome import check_output
from nightbatch.collect.rows import thinking_tokens
from nightbatch.db.models import Batch, BatchStatus, Calibration, Task, TaskAttempt, UsagePurpose, UsageRecord, utcnow
from nightbatch.errors import ConfigError, ProviderError, StateError
from nightbatch.pricing import Usage, price_usage, pusd_to_usd
from nightbatch.quality.checks import agrees
from nightbatch.services import Services
from nightbatch.submit.pack import pack
from nightbatch.submit.submitter import archive_manifest, record_created, write_pending

__all__ = ["ModelScore", "apply_calibration", "finish_calibration", "start_calibration"]


@dataclass(frozen=True)
class ModelScore:
    """How one candidate did on the sample."""

    model: str
    results: int
    passed: int
    agreed: int | None
    cost_usd: str

    @property
    def pass_rate(self) -> float:
        return self.passed / self.results if self.results else 0.0

    @property
    def agreement(self) -> float | None:
        return None if self.agreed is None or not self.results else self.agreed / self.results

    @property
    def cost_per_task_usd(self) -> Decimal:
        return Decimal(self.cost_usd) / self.results if self.results else Decimal(0)

    @property
    def cost_per_success_usd(self) -> Decimal | None:
        return Decimal(self.cost_usd) / self.passed if self.passed else None


def _candidates(services: Services, task_type_name: str, models: list[str] | None) -> list[str]:
    task_type = services.registry.get(task_type_name)
    chosen = models or list(task_type.routing.candidates) or list(task_type.escalation)
    if not chosen:
        raise ConfigError(
            f"task type {task_type_name!r}: no candidates to calibrate; give --models or set routing.candidates "
            "or an escalation ladder"
        )
    for model in chosen:
        model_info(model)
        services.prices.price(model)  # an unpriced candidate is refused before anything is sent

    def rank(model: str) -> tuple[int, Decimal, Decimal]:
        price = services.prices.price(model)
        return model_info(model).tier, price.output, price.input

    return sorted(chosen, key=rank)


def start_calibration(services: Services, task_type_name: str, sample: int, models: list[str] | None = None) -> int:
    """Send the sample to every candidate; returns the calibration id."""
    task_type = services.registry.get(task_type_name)
    candidates = _candidates(services, task_type_name, models)
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(col(Task.id), col(Task.payload))
            .where(col(Task.task_type) == task_type_name)
            .order_by(col(Task.id))
            .limit(sample)
        ).all()
    if not rows:
        raise StateError(f"no tasks of type {task_type_name!r} to calibrate on: enqueue some first")
    with Session(services.engine) as session:
        calibration = Calibration(task_type=task_type_name, sample_size=len(rows), models=candidates,
                                  threshold=task_type.routing.threshold)  # fmt: skip
        session.add(calibration)
        session.commit()
        assert calibration.id is not None
        calibration_id = calibration.id
    builder = RequestBuilder()
    for model in candidates:
        requests = [
            replace(
                builder.build(task_id, 0, task_type, model, payload),
                custom_id=custom_ids.build(custom_ids.Kind.CALIBRATION, task_id, 0),
            )
            for task_id, payload in rows
        ]
        # Never cached: a cold batch's items do not read each other's writes (issue 13), and a one-off sample
        # is not worth a pilot, so a breakpoint would only make every probe pay a write.
        for packed in pack(requests, lambda key, members: None).batches:
            batch_id = write_pending(
                services.engine,
                packed,
                worker=services.worker,
                run_id=None,
                cache_decision=None,
                purpose=UsagePurpose.CALIBRATION,
                calibration_id=calibration_id,
            )
            assert batch_id is not None
            archive_manifest(services.engine, services.store, batch_id, packed)
            created = services.client.create_batch(packed)
            record_created(services.engine, batch_id, created, worker=services.worker)
    return calibration_id


def _batches(services: Services, calibration_id: int) -> list[Batch]:
    with Session(services.engine, expire_on_commit=False) as session:
        return list(session.exec(select(Batch).where(col(Batch.calibration_id) == calibration_id)).scalars())  # type: ignore[call-overload]


def _result_lines(services: Services, batch: Batch) -> Iterator[dict[str, Any]]:
    assert batch.provider_batch_id is not None
    with services.client.result_lines(batch.provider_batch_id) as lines:
        for line in lines:
            yield json.loads(line)


def finish_calibration(services: Services, calibration_id: int) -> list[ModelScore] | None:
    """Score the calibration once all its batches ended; None while some are still running."""
    with Session(services.engine, expire_on_commit=False) as session:
        calibration = session.get(Calibration, calibration_id)
    if calibration is None:
        raise StateError(f"calibration {calibration_id} does not exist")
    if calibration.results is not None:
        return [ModelScore(**row) for row in calibration.results["models"]]
    batches = _batches(services, calibration_id)
    infos = {}
    for batch in batches:
        try:
            info = services.client.retrieve_batch(str(batch.provider_batch_id))
        except ProviderError as exc:
            if not_visible_yet(exc, batch.submitted_at):
                return None  # created seconds ago: the API's transient 404, not a lost batch
            raise
        if info.processing_status != "ended":
            return None
        infos[batch.id] = info
    task_type = services.registry.get(calibration.task_type)
    with services.engine.connect() as conn:
        payloads: dict[int, dict[str, Any]] = {
            int(task_id): payload
            for task_id, payload in conn.execute(
                select(col(Task.id), col(Task.payload)).where(col(Task.task_type) == calibration.task_type)
            )
        }
    outputs: dict[str, dict[int, Any]] = {m: {} for m in calibration.models}
    passed: dict[str, int] = dict.fromkeys(calibration.models, 0)
    cost: dict[str, int] = dict.fromkeys(calibration.models, 0)
    now = utcnow()
    attempt_rows: list[dict[str, Any]] = []
    usage_rows: list[dict[str, Any]] = []
    for batch in batches:
        for line in _result_lines(services, batch):
            parsed = custom_ids.parse(str(line.get("custom_id")))
            if parsed is None or parsed.kind != custom_ids.Kind.CALIBRATION:
                continue  # not a probe of ours: nothing to score
            task_id = parsed.task_id
            result = line.get("result") or {}
            output, check = None, None
            if result.get("type") == "succeeded":
                message = result.get("message") or {}
                output, check = check_output(message, task_type, payloads.get(task_id, {}))
                raw = message.get("usage") or {}
                usage = Usage.from_api(raw)
                geo = raw.get("inference_geo") if isinstance(raw.get("inference_geo"), str) else task_type.inference_geo
                billed_at = infos[batch.id].ended_at or now
                billed = price_usage(services.prices, batch.model, usage, "batch", billed_at.date(),
                                     inference_geo=geo).total_pusd  # fmt: skip
                cost[batch.model] += billed
                passed[batch.model] += check.passed
                outputs[batch.model][task_id] = output
                usage_rows.append({
                    "task_id": task_id, "batch_id": batch.id, "model": batch.model, "service_tier": "batch",
                    "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                    "cache_write_5m_tokens": usage.cache_write_5m_tokens,
                    "cache_write_1h_tokens": usage.cache_write_1h_tokens, "cache_read_tokens": usage.cache_read_tokens,
                    "price_version": services.prices.version, "cost_pusd": billed,
                    "purpose": UsagePurpose.CALIBRATION, "created_at": now,
                    "thinking_tokens": thinking_tokens(message, raw, usage.output_tokens), "inference_geo": geo,
                    "billed_at": billed_at,
                })  # fmt: skip
            attempt_rows.append({
                "task_id": task_id, "task_type": calibration.task_type, "attempt": 0, "model": batch.model,
                "purpose": UsagePurpose.CALIBRATION, "batch_id": batch.id, "custom_id": line["custom_id"],
                "calibration_id": calibration_id, "result_type": str(result.get("type")),
                "check_passed": None if check is None else check.passed,
                "check_reason": None if check is None else check.reason, "output": output, "created_at": now,
            })  # fmt: skip
    reference_field = task_type.checks.reference_field
    top = calibration.models[-1]
    scores = []
    for model in calibration.models:
        if reference_field:
            agreed: int | None = sum(
                agrees(out, payloads.get(tid, {}).get(reference_field)) for tid, out in outputs[model].items()
            )
        else:
            agreed = sum(agrees(out, outputs[top].get(tid)) for tid, out in outputs[model].items())
        results = calibration.sample_size
        scores.append(ModelScore(model, results, passed[model], agreed, str(pusd_to_usd(cost[model]))))
    threshold = calibration.threshold
    recommended = next(
        (
            s.model
            for s in scores
            if threshold is not None and s.pass_rate >= threshold and (s.agreement is None or s.agreement >= threshold)
        ),
        None,
    )
    with services.engine.begin() as conn:
        if attempt_rows:
            conn.execute(insert(TaskAttempt), attempt_rows)
        if usage_rows:
            conn.execute(insert(UsageRecord), usage_rows)
        conn.execute(
            update(Batch)
            .where(col(Batch.id).in_([b.id for b in batches]))
            .values(status=BatchStatus.INGESTED, ingested_at=now)
        )
        conn.execute(
            update(Calibration)
            .where(col(Calibration.id) == calibration_id)
            .values(
                status="decided",
                results={"models": [asdict(s) for s in scores], "agreement_with": reference_field or top},
                recommended_model=recommended,
                decided_at=now,
            )
        )
    return scores


def apply_calibration(services: Services, calibration_id: int) -> str:
    """Make the calibration's recommendation the type's route; returns the model."""
    with Session(services.engine, expire_on_commit=False) as session:
        calibration = session.get(Calibration, calibration_id)
        if calibration is None or calibration.status != "decided":
            raise StateError(f"calibration {calibration_id} is not decided yet")
        if calibration.recommended_model is None:
            raise StateError(
                f"calibration {calibration_id}: no candidate reached the bar of {calibration.threshold}; "
                "nothing to apply (raise the candidates or lower routing.threshold)"
            )
        calibration.applied_at = utcnow()
        session.add(calibration)
        session.commit()
        return calibration.recommended_model
