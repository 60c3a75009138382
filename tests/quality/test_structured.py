"""Structured outputs: the schema is sent where the model supports it, and every result is still validated."""

from __future__ import annotations

from typing import Any

from nightbatch.build.requests import RequestBuilder
from nightbatch.collect.outcome import decide
from nightbatch.db.models import TaskStatus
from nightbatch.tasktypes import TaskType

SCHEMA = {"type": "object", "required": ["date"], "properties": {"date": {"type": ["string", "null"]}}}
LADDER = ("claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5")


def extraction(**overrides: Any) -> TaskType:
    fields: dict[str, Any] = {
        "name": "dates", "model": LADDER[0], "max_tokens": 32, "output": "json", "output_schema": SCHEMA,
        "structured": True, "thinking": "disabled", "escalation": LADDER,
    }  # fmt: skip
    fields.update(overrides)
    return TaskType.model_validate(fields)


def succeeded(text: str, thinking: str | None = None) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "thinking", "thinking": thinking, "signature": "s"}] if thinking else []
    content.append({"type": "text", "text": text})
    return {"type": "succeeded", "message": {"content": content, "usage": {"input_tokens": 1, "output_tokens": 1}}}


def test_the_schema_is_sent_on_every_rung_that_supports_it() -> None:
    builder = RequestBuilder()
    for model in LADDER:
        params = builder.build(1, 1, extraction(), model, {"text": "x"}).params(None)
        assert params["output_config"]["format"] == {"type": "json_schema", "schema": SCHEMA}


def test_a_conforming_result_succeeds_and_thinking_is_not_output() -> None:
    decision = decide(succeeded('{"date": "2026-05-03"}', thinking="hmm, May"), attempts=1, max_attempts=3,
                      user_canceled=False, task_type=extraction(), model=LADDER[0])  # fmt: skip
    assert decision.status == TaskStatus.SUCCEEDED
    assert decision.output == {"date": "2026-05-03"}


def test_a_schema_violation_escalates_to_the_next_rung() -> None:
    decision = decide(succeeded('{"day": "2026-05-03"}'), attempts=1, max_attempts=3, user_canceled=False,
                      task_type=extraction(), model=LADDER[0])  # fmt: skip
    assert decision.status == TaskStatus.QUEUED
    assert decision.escalate_to == LADDER[1]
    assert decision.error_type == "output_check"
    assert decision.billed  # the response was billed all the same


def test_a_schema_violation_on_the_top_rung_fails_the_task() -> None:
    decision = decide(succeeded('{"date": 20260503}'), attempts=1, max_attempts=3, user_canceled=False,
                      task_type=extraction(), model=LADDER[-1])  # fmt: skip
    assert decision.status == TaskStatus.FAILED
    assert decision.error_type == "output_check"


def test_truncated_json_is_a_violation_too() -> None:
    decision = decide(succeeded('{"date": "2026-05'), attempts=1, max_attempts=3, user_canceled=False,
                      task_type=extraction(escalation=()), model=LADDER[0])  # fmt: skip
    assert (decision.status, decision.error_type) == (TaskStatus.FAILED, "output_check")


def test_structured_with_text_output_is_still_read_as_json() -> None:
    decision = decide(succeeded('{"date": null}'), attempts=1, max_attempts=3, user_canceled=False,
                      task_type=extraction(output="text", escalation=()), model=LADDER[0])  # fmt: skip
    assert decision.status == TaskStatus.SUCCEEDED
    assert decision.output == {"date": None}


def test_a_dated_id_result_escalates_from_its_rung() -> None:
    ladder = ("claude-haiku-4-5-20251001", "claude-sonnet-4-6")
    decision = decide(succeeded('{"day": 1}'), attempts=1, max_attempts=3, user_canceled=False,
                      task_type=extraction(escalation=ladder, model=ladder[0]), model="claude-haiku-4-5")  # fmt: skip
    assert decision.escalate_to == "claude-sonnet-4-6"
