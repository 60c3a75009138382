"""Deadline cancels racing the provider: a cancel that lands after the batch ended, during its last wave, or
whose answer is lost. Every run ends with every invariant of docs/reliability.md holding (``check``): each
billed response booked once at its price, batch and real-time apart, no task paid twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from nightbatch.collect.poll import collect_step
from nightbatch.deadline.policy import DeadlineReport, deadline_step
from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from tests.campaigns.invariants import check
from tests.deadline.test_policies import TASKS, TYPE, enqueue_triage, with_policy

Race = Callable[[Services, EmulatorServer, str], None]


def ended_before_the_cancel(services: Services, emulator: EmulatorServer, provider_id: str) -> None:
    emulator.advance(3600)  # the batch ended at the provider; our last poll still saw it running


def cancel_during_the_last_wave(services: Services, emulator: EmulatorServer, provider_id: str) -> None:
    emulator.advance(5 + 2 * 2 + 1)  # waves of 4: the third (last) wave is in flight when the cancel lands


def cancel_answer_lost(services: Services, emulator: EmulatorServer, provider_id: str) -> None:
    emulator.stall_batch(provider_id, after_requests=4)
    emulator.advance(60)
    emulator.faults.drop("batch_cancel", times=3)  # the cancel happens; its answer never arrives (SDK retries too)


RACES: dict[str, Race] = {
    "ended before the cancel": ended_before_the_cancel,
    "cancel during the last wave": cancel_during_the_last_wave,
    "cancel answer lost": cancel_answer_lost,
}


@pytest.mark.parametrize("policy", ["realtime", "next_run", "fail"])
@pytest.mark.parametrize("race", sorted(RACES))
def test_a_deadline_cancel_racing_the_batch_end_keeps_every_invariant(
    services: Services, emulator: EmulatorServer, race: str, policy: str
) -> None:
    services = with_policy(services, policy)
    deadline = datetime.now(UTC) + timedelta(hours=6)
    enqueue_triage(services, deadline)
    emulator.configure(batch_concurrency=4, cancel_delay_seconds=1)
    (outcome,) = submit_step(services, task_types=[TYPE]).batches
    assert outcome.provider_batch_id is not None
    RACES[race](services, emulator, outcome.provider_batch_id)
    reports: list[DeadlineReport] = []
    for minute in range(5):  # the flow's loop: deadline step, time passes, collect
        reports.append(deadline_step(services, now=deadline - timedelta(minutes=20 - minute)))
        emulator.advance(30)
        collect_step(services)
    reports.append(deadline_step(services, now=deadline - timedelta(minutes=14)))
    outcome_ = check(services.engine, services.store, emulator.ledger.entries(), services.prices,
                     max_attempts=services.settings.max_attempts, errors_recorded=True)  # fmt: skip
    assert outcome_.violations == []
    assert sum(outcome_.tasks.values()) == TASKS
    if race == "ended before the cancel":
        assert all(r.canceled_batches == [] for r in reports)  # the API refused: nothing to cancel
        assert outcome_.tasks == {"succeeded": TASKS}
    if race == "cancel during the last wave":
        assert reports[0].canceled_batches == [outcome.batch_id]
        assert outcome_.tasks == {"succeeded": TASKS}  # the in-flight wave finished: kept, billed once
    if race == "cancel answer lost":
        assert any("canceling batch" in e for r in reports for e in r.errors)  # said, and tried again
    settled = {"realtime": {"succeeded"}, "next_run": {"succeeded", "queued"}, "fail": {"succeeded", "failed"}}
    assert set(outcome_.tasks) <= settled[policy]
