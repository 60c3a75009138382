"""What a batch result means for its task: the outcome policy, and reading a model's output.

=================================  ============================================================
result                             task
=================================  ============================================================
succeeded, output passes checks    ``succeeded``
succeeded, output fails checks     ``queued`` for the next rung of the type's escalation ladder, or
                                   ``failed`` (``error_type`` = ``output_check``) on the last rung
errored ``invalid_request_error``  ``failed``: the request itself must be fixed
errored, any other type            ``queued`` again, ``failed`` once attempts reach the limit
expired                            ``queued`` again, ``failed`` once attempts reach the limit
canceled                           ``canceled`` if the user canceled it, else ``queued`` again
=================================  ============================================================

``attempts`` counts requests sent (it goes up when a batch's create is accepted), so it already includes
the attempt being decided. A request canceled before it ran was not the task's fault: its attempt is given back.
A type with ``structured = true`` had its schema sent as ``output_config.format``; its output is read as
JSON and still validated against ``output_schema`` here (the SDK has no parser for batch results, and a
rung without structured-output support, or a refusal / ``max_tokens`` stop, can still break the schema):
a violation is an ``output_check`` failure like any other, so it escalates or fails by the table above.
Thinking blocks are never part of the output.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from nightbatch.db.models import TaskStatus
from nightbatch.quality.checks import CheckResult, run_checks
from nightbatch.route import next_rung
from nightbatch.tasktypes import TaskType

__all__ = ["Decision", "check_output", "decide", "extract_output"]

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True)
class Decision:
    status: TaskStatus
    attempts: int
    error_type: str | None = None
    error_message: str | None = None
    output: Any = None
    billed: bool = False
    check: CheckResult | None = None
    escalate_to: str | None = None


def extract_output(message: dict[str, Any], task_type: TaskType | None) -> tuple[Any, str | None]:
    """The task's output from a Message, and why it cannot be read as the type's output (or None)."""
    text = "".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text")
    if task_type is None or (task_type.output == "text" and not task_type.structured):
        return text, None
    candidate = text.strip()
    fenced = _FENCE.match(candidate)
    if fenced:
        candidate = fenced.group(1)
    try:
        return json.loads(candidate), None
    except json.JSONDecodeError:
        return text, f"output is not valid JSON: {text[:120]!r}"


def check_output(
    message: dict[str, Any], task_type: TaskType | None, payload: dict[str, Any]
) -> tuple[Any, CheckResult]:
    """Read the output and run the type's checks on it."""
    output, unreadable = extract_output(message, task_type)
    if unreadable:
        return output, CheckResult(False, unreadable)
    if task_type is None:
        return output, CheckResult(True)
    return output, run_checks(task_type.checks, output, payload, output_schema=task_type.output_schema)


def decide(
    result: dict[str, Any],
    *,
    attempts: int,
    max_attempts: int,
    user_canceled: bool,
    task_type: TaskType | None,
    model: str | None = None,
    payload: dict[str, Any] | None = None,
) -> Decision:
    """Apply the outcome policy (module docstring) to one result line's ``result`` object."""
    kind = result.get("type")
    if kind == "succeeded":
        output, check = check_output(result.get("message") or {}, task_type, payload or {})
        if check.passed:
            return Decision(TaskStatus.SUCCEEDED, attempts, output=output, billed=True, check=check)
        above = next_rung(task_type, model) if task_type is not None and model else None
        if above is not None:
            # Escalation is not a retry of the same request: the claim it cost is given back.
            return Decision(TaskStatus.QUEUED, max(0, attempts - 1), "output_check", check.reason, output, True,
                            check, escalate_to=above)  # fmt: skip
        return Decision(TaskStatus.FAILED, attempts, "output_check", check.reason, output, billed=True, check=check)
    if kind == "canceled":
        if user_canceled:
            return Decision(TaskStatus.CANCELED, attempts, "canceled", "canceled by the user")
        given_back = max(0, attempts - 1)
        return Decision(TaskStatus.QUEUED, given_back, "canceled", "batch canceled before this request ran")
    if kind == "errored":
        error = (result.get("error") or {}).get("error") or {}
        error_type = str(error.get("type") or "api_error")
        message = str(error.get("message") or "")
        if error_type == "invalid_request_error":
            return Decision(TaskStatus.FAILED, attempts, error_type, message)
    elif kind == "expired":
        error_type, message = "expired", "request expired before the batch processed it"
    else:
        error_type, message = "unknown_result", f"unrecognised result type {kind!r}"
    status = TaskStatus.FAILED if attempts >= max_attempts else TaskStatus.QUEUED
    return Decision(status, attempts, error_type, message)
