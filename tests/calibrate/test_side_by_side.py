"""Calibration can put Haiku 4.5 and Haiku 5.5 side by side: same tier, ranked by price, measured per task."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from nightbatch.calibrate import apply_calibration, finish_calibration, start_calibration
from nightbatch.db.models import UsagePurpose, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from nightbatch.tasktypes import TaskTypeRegistry
from tests.quality.conftest import TRIAGE, enqueue_tickets

# Thinking off, so the comparison is the models' own answers (and Haiku 5.5 is not left to think).
TRIAGE_OFF = TRIAGE.model_copy(update={"thinking": "disabled"})


def test_haiku_4_5_and_haiku_5_5_side_by_side(local_services: Services, emulator: EmulatorServer) -> None:
    services = local_services
    services.registry = TaskTypeRegistry([TRIAGE_OFF])
    emulator.configure(quality_error_rates={1: 0.0, 2: 0.0, 3: 0.0})
    enqueue_tickets(services, 30)
    calibration_id = start_calibration(services, "triage", 30, ["claude-haiku-4-5", "claude-haiku-5-5"])
    emulator.advance(3600)
    scores = finish_calibration(services, calibration_id)
    assert scores is not None
    # Both tier 1: the cheaper price list (Haiku 5.5, $0.10/$0.50) is tried first.
    assert [s.model for s in scores] == ["claude-haiku-5-5", "claude-haiku-4-5"]
    new, old = scores
    assert new.results == old.results == 30
    assert new.pass_rate == old.pass_rate == 1.0
    assert new.cost_per_task_usd < old.cost_per_task_usd  # measured from each model's own usage
    assert apply_calibration(services, calibration_id) == "claude-haiku-5-5"
    with Session(services.engine) as session:
        rows = [
            u for (u,) in session.exec(select(UsageRecord).where(col(UsageRecord.purpose) == UsagePurpose.CALIBRATION))
        ]  # type: ignore[call-overload]
    assert {u.model for u in rows} == {"claude-haiku-4-5", "claude-haiku-5-5"}
    assert all(u.billed_at is not None and u.cost_pusd for u in rows)
