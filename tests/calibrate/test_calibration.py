"""Calibration picks the cheapest model over the bar, refuses one under it, and routing follows when applied."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from nightbatch.calibrate import apply_calibration, finish_calibration, start_calibration
from nightbatch.collect.poll import collect_step
from nightbatch.db.calibrations import calibrated_routes
from nightbatch.db.models import Task, UsagePurpose, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.errors import StateError
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from tests.quality.conftest import LADDER, enqueue_tickets, use_types


def calibrate(services: Services, emulator: EmulatorServer, sample: int = 60) -> int:
    calibration_id = start_calibration(services, "triage", sample)
    assert finish_calibration(services, calibration_id) is None  # batches still running
    emulator.advance(3600)
    return calibration_id


def test_picks_the_cheapest_model_that_meets_the_bar(local_services: Services, emulator: EmulatorServer):
    services = local_services
    use_types(services)
    emulator.configure(quality_error_rates={1: 0.3, 2: 0.02, 3: 0.0})
    enqueue_tickets(services, 60)
    calibration_id = calibrate(services, emulator)
    scores = finish_calibration(services, calibration_id)
    assert scores is not None
    by_model = {s.model: s for s in scores}
    assert list(by_model) == list(LADDER)
    # Wrong labels are still valid labels: checks pass, agreement with the reference does not.
    assert by_model["claude-haiku-4-5"].pass_rate == 1.0
    assert by_model["claude-haiku-4-5"].agreement is not None
    assert by_model["claude-haiku-4-5"].agreement < 0.9
    assert by_model["claude-sonnet-4-6"].agreement is not None
    assert by_model["claude-sonnet-4-6"].agreement >= 0.9
    costs = [s.cost_per_task_usd for s in scores]
    assert costs == sorted(costs)  # Haiku < Sonnet < Opus per task
    assert apply_calibration(services, calibration_id) == "claude-sonnet-4-6"
    assert calibrated_routes(services.engine) == {"triage": "claude-sonnet-4-6"}
    # Calibration probes are billed in the ledger, and routing now follows the measurement.
    with Session(services.engine) as session:
        usage = [u for (u,) in session.exec(select(UsageRecord))]
    assert len([u for u in usage if u.purpose == UsagePurpose.CALIBRATION]) == 180
    submit_step(services)
    emulator.advance(3600)
    collect_step(services)
    with Session(services.engine) as session:
        models = {t.model for (t,) in session.exec(select(Task))}
    assert models == {"claude-sonnet-4-6"}


def test_refuses_to_pick_a_model_under_the_bar(local_services: Services, emulator: EmulatorServer):
    services = local_services
    use_types(services)
    emulator.configure(quality_error_rates={1: 0.5, 2: 0.5, 3: 0.5})
    enqueue_tickets(services, 30)
    calibration_id = calibrate(services, emulator, sample=30)
    assert finish_calibration(services, calibration_id) is not None
    with pytest.raises(StateError, match="no candidate reached the bar"):
        apply_calibration(services, calibration_id)
    assert calibrated_routes(services.engine) == {}
