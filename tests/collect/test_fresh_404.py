"""The API answers 404 for a few seconds right after a batch is created: the poller (and calibration) must
look again later, never report the batch as failed or gone. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlmodel import col

from nightbatch.calibrate import finish_calibration, start_calibration
from nightbatch.claude.client import FRESH_BATCH_404_GRACE, not_visible_yet
from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Batch, BatchStatus
from nightbatch.emulator import EmulatorServer
from nightbatch.errors import PermanentProviderError
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from tests.pipeline.conftest import enqueue_examples
from tests.quality.conftest import enqueue_tickets, use_types


def batch_statuses(services: Services) -> list[str]:
    with services.engine.connect() as conn:
        return [str(s) for (s,) in conn.execute(select(col(Batch.status)).order_by(col(Batch.id)))]


def test_a_just_created_batch_answering_404_is_polled_again_not_failed(
    local_services: Services, emulator: EmulatorServer
):
    services = local_services
    emulator.faults.not_found_after_create(5.0)
    enqueue_examples(services.engine, per_type=2)
    submit_step(services)
    created = len(batch_statuses(services))
    assert created > 0

    first = collect_step(services)
    assert first.errors == []
    assert first.not_yet_visible == created
    assert first.still_open == created
    assert batch_statuses(services) == [BatchStatus.IN_PROGRESS] * created

    emulator.advance(3600)  # past the 404 window, and every batch ended
    second = collect_step(services)
    assert second.errors == []
    assert second.not_yet_visible == 0
    assert len(second.ingested) == created


def test_a_404_long_after_create_is_still_reported(local_services: Services, emulator: EmulatorServer):
    services = local_services
    enqueue_examples(services.engine, per_type=1)
    submit_step(services)
    with services.engine.begin() as conn:  # as if created long ago, then lost on the provider's side
        conn.execute(update(Batch).values(submitted_at=datetime.now(UTC) - 2 * FRESH_BATCH_404_GRACE))
    emulator.faults.fail("batch_retrieve", "not_found_error", times=None)
    report = collect_step(services)
    assert report.not_yet_visible == 0
    assert report.errors
    assert "404" in report.errors[0]
    assert set(batch_statuses(services)) == {BatchStatus.IN_PROGRESS}  # never marked gone by a poll


def test_calibration_right_after_create_waits_instead_of_failing(local_services: Services, emulator: EmulatorServer):
    services = local_services
    use_types(services)
    enqueue_tickets(services, 10)
    emulator.faults.not_found_after_create(5.0)
    calibration_id = start_calibration(services, "triage", 10)
    assert finish_calibration(services, calibration_id) is None  # was: PermanentProviderError (HTTP 404)
    emulator.advance(3600)
    assert finish_calibration(services, calibration_id) is not None


def test_not_visible_yet_only_for_a_recent_404():
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    not_found = PermanentProviderError("gone", status_code=404, error_type="not_found_error")
    assert not_visible_yet(not_found, now - timedelta(seconds=3), now=now)
    assert not not_visible_yet(not_found, now - FRESH_BATCH_404_GRACE, now=now)
    assert not not_visible_yet(not_found, None, now=now)
    other = PermanentProviderError("bad", status_code=400, error_type="invalid_request_error")
    assert not not_visible_yet(other, now, now=now)
