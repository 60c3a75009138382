"""Each result type ends its task as the outcome policy says, with the error recorded."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Task, TaskStatus
from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from tests.pipeline.conftest import enqueue_examples, without_caching


@pytest.fixture(autouse=True)
def _caching_off(request: pytest.FixtureRequest) -> None:
    """These tests are not about caching: one submit sends every task (no pilot waits; see test_pilot.py)."""
    for name in ("services", "local_services"):
        if name in request.fixturenames:
            without_caching(request.getfixturevalue(name))


def tasks(services: Services) -> dict[int, Task]:
    with Session(services.engine) as session:
        return {t.id: t for (t,) in session.exec(select(Task)).all() if t.id is not None}


def round_trip(services: Services, emulator: EmulatorServer) -> None:
    submit_step(services)
    emulator.advance(3600)
    collect_step(services)


def test_each_error_type_is_recorded_and_retried_or_failed(services: Services, emulator: EmulatorServer):
    ids = sorted(enqueue_examples(services.engine, per_type=5))
    kinds = ["invalid_request_error", "api_error", "overloaded_error", "rate_limit_error", "timeout_error",
             "billing_error", "authentication_error", "permission_error", "not_found_error"]  # fmt: skip
    chosen = dict(zip(ids, kinds, strict=False))
    for task_id, kind in chosen.items():
        emulator.faults.error_requests(kind, custom_ids={f"t{task_id}-1"})  # type: ignore[arg-type]
    expired_id = ids[len(kinds)]
    emulator.faults.expire_requests(custom_ids={f"t{expired_id}-1"})
    round_trip(services, emulator)
    after = tasks(services)
    for task_id, kind in chosen.items():
        task = after[task_id]
        assert task.error_type == kind, task_id
        if kind == "invalid_request_error":
            assert task.status == TaskStatus.FAILED  # the request itself must be fixed
        else:
            assert (task.status, task.attempts, task.batch_id) == (TaskStatus.QUEUED, 1, None)
    assert (after[expired_id].status, after[expired_id].error_type) == (TaskStatus.QUEUED, "expired")
    untouched = set(ids) - set(chosen) - {expired_id}
    assert {after[i].status for i in untouched} == {TaskStatus.SUCCEEDED}

    # The retryable ones go out again and succeed on their second attempt.
    round_trip(services, emulator)
    final = tasks(services)
    assert final[expired_id].status == TaskStatus.SUCCEEDED
    assert final[expired_id].attempts == 2
    assert sum(t.status == TaskStatus.SUCCEEDED for t in final.values()) == len(ids) - 1


def test_a_task_that_keeps_failing_stops_at_the_attempt_limit(services: Services, emulator: EmulatorServer):
    (task_id, *_) = sorted(enqueue_examples(services.engine, per_type=1))
    emulator.faults.error_requests("overloaded_error", custom_ids={f"t{task_id}-{n}" for n in range(1, 10)})
    for _ in range(5):
        round_trip(services, emulator)
    task = tasks(services)[task_id]
    assert (task.status, task.attempts, task.error_type) == (TaskStatus.FAILED, 3, "overloaded_error")


def test_canceling_a_batch_requeues_its_unprocessed_tasks(services: Services, emulator: EmulatorServer):
    enqueue_examples(services.engine, per_type=4)
    report = submit_step(services)
    for outcome in report.batches:
        assert outcome.provider_batch_id is not None
        services.client.cancel_batch(outcome.provider_batch_id)
    emulator.advance(3600)
    collect_step(services)
    after = tasks(services)
    assert {t.status for t in after.values()} == {TaskStatus.QUEUED}
    assert {t.attempts for t in after.values()} == {0}  # a canceled request is not the task's fault
    round_trip(services, emulator)
    assert {t.status for t in tasks(services).values()} == {TaskStatus.SUCCEEDED}


def test_a_task_of_an_unconfigured_type_stays_queued_and_is_reported(services: Services, emulator: EmulatorServer):
    import pytest

    from nightbatch.errors import ConfigError
    from nightbatch.queue.enqueue import enqueue

    enqueue(services.engine, "no_such_type", {"text": "x"})
    enqueue_examples(services.engine, per_type=1)
    report = submit_step(services)
    assert report.unconfigured_queued == {"no_such_type": 1}
    assert report.submitted_tasks == 4
    with pytest.raises(ConfigError, match="no_such_type"):
        submit_step(services, task_types=["no_such_type"])
