"""Expired results: retried in the next round before the deadline, settled by ``on_deadline`` after it, and
nothing that succeeded is sent again."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from nightbatch.collect.poll import collect_step
from nightbatch.db.models import TaskStatus
from nightbatch.deadline.policy import deadline_step
from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from tests.deadline.test_policies import TASKS, TYPE, billed_once, enqueue_triage, tasks, with_policy

EXPIRING = 3


def expire_some(services: Services, emulator: EmulatorServer, ids: list[int]) -> list[int]:
    expiring = sorted(ids)[:EXPIRING]
    emulator.faults.expire_requests(custom_ids={f"t{i}-1" for i in expiring})
    submit_step(services, task_types=[TYPE])
    emulator.advance(3600)
    collect_step(services)
    return expiring


def test_expired_requests_go_out_again_in_the_next_round_alone(services: Services, emulator: EmulatorServer):
    services = with_policy(services, "next_run")
    ids = enqueue_triage(services, datetime.now(UTC) + timedelta(hours=6))
    expiring = expire_some(services, emulator, ids)
    after = tasks(services)
    assert sorted(i for i in ids if after[i].status == TaskStatus.QUEUED) == expiring
    report = deadline_step(services, now=datetime.now(UTC))  # hours before the deadline: nothing to settle
    assert (report.realtime, report.left_queued, report.failed) == ([], [], [])
    again = submit_step(services, task_types=[TYPE])
    assert again.submitted_tasks == EXPIRING  # the succeeded ones are not sent again
    emulator.advance(3600)
    collect_step(services)
    assert {t.status for t in tasks(services).values()} == {TaskStatus.SUCCEEDED}
    assert billed_once(services, emulator) == {("batch", "task"): TASKS}


@pytest.mark.parametrize(
    ("policy", "status"),
    [("realtime", TaskStatus.SUCCEEDED), ("next_run", TaskStatus.QUEUED), ("fail", TaskStatus.FAILED)],
)
def test_expired_requests_past_the_margin_follow_the_policy(
    services: Services, emulator: EmulatorServer, policy: str, status: TaskStatus
):
    services = with_policy(services, policy)
    deadline = datetime.now(UTC) + timedelta(hours=6)
    ids = enqueue_triage(services, deadline)
    expiring = expire_some(services, emulator, ids)
    deadline_step(services, now=deadline - timedelta(minutes=10))
    after = tasks(services)
    assert {after[i].status for i in expiring} == {status}
    assert Counter(after[i].status for i in ids if i not in expiring) == {TaskStatus.SUCCEEDED: TASKS - EXPIRING}
    billed = billed_once(services, emulator)
    assert billed[("batch", "task")] == TASKS - EXPIRING
    assert billed.get(("standard", "fallback"), 0) == (EXPIRING if policy == "realtime" else 0)
