"""The outcome policy, result type by result type."""

from __future__ import annotations

import pytest

from nightbatch.collect.outcome import decide, extract_output
from nightbatch.db.models import TaskStatus
from nightbatch.tasktypes import TaskType

JSON_TYPE = TaskType(name="dates", model="claude-haiku-4-5", max_tokens=20, output="json",
                     output_schema={"type": "object", "required": ["date"]})  # fmt: skip


def message(text: str) -> dict[str, object]:
    return {"content": [{"type": "text", "text": text}], "usage": {"input_tokens": 5, "output_tokens": 2}}


def errored(kind: str) -> dict[str, object]:
    return {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": f"{kind} happened"}}}


def test_succeeded_with_valid_output():
    d = decide({"type": "succeeded", "message": message('{"date": "2024-01-02"}')}, attempts=0, max_attempts=3,
               user_canceled=False, task_type=JSON_TYPE)  # fmt: skip
    assert (d.status, d.attempts, d.output, d.billed) == (TaskStatus.SUCCEEDED, 0, {"date": "2024-01-02"}, True)


@pytest.mark.parametrize("text", ["not json", '{"day": 3}', "[1, 2]"])
def test_succeeded_but_failing_checks_is_failed_and_still_billed(text: str):
    d = decide({"type": "succeeded", "message": message(text)}, attempts=0, max_attempts=3, user_canceled=False,
               task_type=JSON_TYPE)  # fmt: skip
    assert (d.status, d.error_type, d.billed) == (TaskStatus.FAILED, "output_check", True)


def test_fenced_json_is_accepted():
    value, problem = extract_output(message('```json\n{"date": null}\n```'), JSON_TYPE)
    assert (value, problem) == ({"date": None}, None)


def test_invalid_request_fails_at_once():
    d = decide(errored("invalid_request_error"), attempts=0, max_attempts=3, user_canceled=False, task_type=None)
    assert (d.status, d.error_type, d.billed) == (TaskStatus.FAILED, "invalid_request_error", False)


@pytest.mark.parametrize("kind", ["api_error", "overloaded_error", "rate_limit_error", "timeout_error"])
def test_other_errors_retry_until_the_limit(kind: str):
    first = decide(errored(kind), attempts=1, max_attempts=3, user_canceled=False, task_type=None)
    assert (first.status, first.attempts, first.error_type) == (TaskStatus.QUEUED, 1, kind)
    last = decide(errored(kind), attempts=3, max_attempts=3, user_canceled=False, task_type=None)
    assert (last.status, last.attempts) == (TaskStatus.FAILED, 3)


def test_expired_retries_and_canceled_requeues_unless_the_user_canceled():
    expired = decide({"type": "expired"}, attempts=0, max_attempts=3, user_canceled=False, task_type=None)
    assert (expired.status, expired.error_type) == (TaskStatus.QUEUED, "expired")
    canceled = decide({"type": "canceled"}, attempts=1, max_attempts=3, user_canceled=False, task_type=None)
    assert (canceled.status, canceled.attempts) == (TaskStatus.QUEUED, 0)
    by_user = decide({"type": "canceled"}, attempts=1, max_attempts=3, user_canceled=True, task_type=None)
    assert by_user.status == TaskStatus.CANCELED
