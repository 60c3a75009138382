"""Running a calibration: submit the sample to every candidate, ingest the probes, score, apply (see the package)."""

from __future__ import annotations

from dataclasses import asdict, replace
from decimal import Decimal

from nightbatch import custom_ids
from nightbatch.build.requests import RequestBuilder
from nightbatch.calibrate.score import ModelScore, recommend, score
from nightbatch.catalog import model_info
from nightbatch.claude.client import not_visible_yet
from nightbatch.collect.poll import ingest_one
from nightbatch.db.batches import record_polled
from nightbatch.db.calibrations import (
    create_calibration,
    decide_calibration,
    first_tasks_of_type,
    load_calibration,
    mark_calibration_applied,
    payloads_of_type,
    probe_costs_pusd,
    probe_results,
)
from nightbatch.db.ingest_batches import calibration_batches
from nightbatch.db.models import Batch, BatchStatus, UsagePurpose, utcnow
from nightbatch.errors import ConfigError, ProviderError, StateError
from nightbatch.services import Services
from nightbatch.submit.pack import pack
from nightbatch.submit.submitter import submit_batch

__all__ = ["apply_calibration", "finish_calibration", "start_calibration"]

_OPEN = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELING)


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
    rows = first_tasks_of_type(services.engine, task_type_name, sample)
    if not rows:
        raise StateError(f"no tasks of type {task_type_name!r} to calibrate on: enqueue some first")
    calibration_id = create_calibration(services.engine, task_type=task_type_name, sample_size=len(rows),
                                        models=candidates, threshold=task_type.routing.threshold)  # fmt: skip
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
            submit_batch(services.engine, services.client, services.store, packed, worker=services.worker,
                         purpose=UsagePurpose.CALIBRATION, calibration_id=calibration_id)  # fmt: skip
    return calibration_id


def _ingested(services: Services, batch: Batch) -> bool:
    """Poll and ingest one of the calibration's batches as far as it goes now; True once it is ingested."""
    assert batch.id is not None
    status = batch.status
    if status == BatchStatus.PENDING:
        return False  # its create is unconfirmed: the reconciler settles it first
    if status in _OPEN:
        assert batch.provider_batch_id is not None
        try:
            info = services.client.retrieve_batch(batch.provider_batch_id)
        except ProviderError as exc:
            if not_visible_yet(exc, batch.submitted_at):
                return False  # created seconds ago: the API's transient 404, not a lost batch
            raise
        record_polled(services.engine, batch.id, info)
        if info.processing_status != "ended":
            return False
        status = BatchStatus.ENDED
    if status == BatchStatus.ENDED:
        # Under the ingest lease, as any collector ingests: None when another one is ingesting it now.
        return ingest_one(services, batch.id) is not None
    if status != BatchStatus.INGESTED:
        raise StateError(f"batch {batch.id} of this calibration is {status}: it has no results to score")
    return True


def finish_calibration(services: Services, calibration_id: int) -> list[ModelScore] | None:
    """Score the calibration once all its batches ended (ingesting them); None while some are still running."""
    calibration = load_calibration(services.engine, calibration_id)
    if calibration is None:
        raise StateError(f"calibration {calibration_id} does not exist")
    if calibration.results is not None:
        return [ModelScore(**row) for row in calibration.results["models"]]
    batches = calibration_batches(services.engine, calibration_id)
    moved = [_ingested(services, batch) for batch in batches]  # every batch moved on as far as it goes now
    if not all(moved):
        return None
    task_type = services.registry.get(calibration.task_type)
    reference_field = task_type.checks.reference_field
    payloads = payloads_of_type(services.engine, calibration.task_type) if reference_field else {}
    scores = score(calibration.models, calibration.sample_size, probe_results(services.engine, calibration_id),
                   probe_costs_pusd(services.engine, calibration_id), reference_field=reference_field,
                   payloads=payloads)  # fmt: skip
    recommended = recommend(scores, calibration.threshold)
    results = {"models": [asdict(s) for s in scores], "agreement_with": reference_field or calibration.models[-1]}
    decide_calibration(services.engine, calibration_id, results=results, recommended=recommended, now=utcnow())
    return scores


def apply_calibration(services: Services, calibration_id: int) -> str:
    """Make the calibration's recommendation the type's route; returns the model."""
    calibration = load_calibration(services.engine, calibration_id)
    if calibration is None or calibration.status != "decided":
        raise StateError(f"calibration {calibration_id} is not decided yet")
    if calibration.recommended_model is None:
        raise StateError(
            f"calibration {calibration_id}: no candidate reached the bar of {calibration.threshold}; "
            "nothing to apply (raise the candidates or lower routing.threshold)"
        )
    mark_calibration_applied(services.engine, calibration_id, utcnow())
    return calibration.recommended_model
