"""Task files: JSON Lines, one task per line, read as a stream.

Each non-blank line is a JSON object, in one of two shapes:

* an **envelope**, when the object has a ``"payload"`` key whose value is an object::

      {"payload": {...}, "task_type": "summarise", "key": "doc-17", "priority": 5,
       "deadline": "2026-12-01T06:00:00Z", "model": "claude-haiku-4-5"}

  Only ``payload`` is required. Any other field is an error, so a payload that happens to contain a
  ``"payload"`` object is never silently cut down: wrap it as ``{"payload": {...the whole object...}}``.
* otherwise a **bare payload**: the whole object is the payload; everything else takes its default.

``task_type`` falls back to the file's default (``--task-type``); a line with neither is an error.
``deadline`` is an ISO 8601 string with a UTC offset. ``model`` becomes the task's ``model_override``.
Blank lines are skipped (they still count for line numbers). Lines may be ``str`` or UTF-8 ``bytes``.

A task without a ``key`` gets :func:`default_key`: a SHA-256 of its task type and the canonical JSON of its
payload (keys sorted, no whitespace), so enqueueing the same file twice enqueues nothing the second time,
and two lines with equal payloads of the same type are one task. Explicit keys are global, across types.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from nightbatch.db.models import KEY_MAX_LENGTH, MODEL_MAX_LENGTH, TASK_TYPE_MAX_LENGTH
from nightbatch.errors import InputError, TaskFileError

__all__ = ["TaskFileReader", "TaskSource", "TaskSpec", "canonical_json", "default_key", "make_task_spec", "parse_line"]

TaskSource = str | os.PathLike[str] | Iterable[str] | Iterable[bytes]
"""A path (``str`` or path-like) or any iterable of lines: an open file, ``body.iter_lines()`` of S3."""

ENVELOPE_FIELDS = ("payload", "key", "task_type", "priority", "deadline", "model")


@dataclass(frozen=True)
class TaskSpec:
    """One validated task, ready to insert: its idempotency key is always resolved."""

    task_type: str
    payload: dict[str, Any]
    key: str
    priority: int = 0
    deadline: datetime | None = None
    model_override: str | None = None


def canonical_json(payload: Any) -> str:
    """``payload`` as canonical JSON: sorted keys, no whitespace, no NaN/Infinity; TypeError/ValueError if not JSON."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def default_key(task_type: str, payload: dict[str, Any]) -> str:
    """The idempotency key of a task that was given none: ``sha256:`` + hex of type and canonical payload."""
    digest = hashlib.sha256(f"{task_type}\n{canonical_json(payload)}".encode()).hexdigest()
    return f"sha256:{digest}"


def _check_task_type(task_type: str) -> str:
    if not task_type or task_type != task_type.strip():
        raise ValueError(f"task type {task_type!r} is empty or has surrounding whitespace")
    if len(task_type) > TASK_TYPE_MAX_LENGTH:
        raise ValueError(f"task type is {len(task_type)} characters long; the limit is {TASK_TYPE_MAX_LENGTH}")
    return task_type


def make_task_spec(
    task_type: str,
    payload: dict[str, Any],
    *,
    key: str | None = None,
    priority: int = 0,
    deadline: datetime | None = None,
    model_override: str | None = None,
) -> TaskSpec:
    """Validate one task given in code; :class:`InputError` says what is wrong."""
    try:
        _check_task_type(task_type)
        if not isinstance(payload, dict):
            raise ValueError(f"payload must be a dict (a JSON object), got {type(payload).__name__}")
        try:
            resolved_key = default_key(task_type, payload) if key is None else key
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload is not JSON: {exc}") from exc
        if not resolved_key or len(resolved_key) > KEY_MAX_LENGTH:
            raise ValueError(f"key must be 1 to {KEY_MAX_LENGTH} characters, got {len(resolved_key)}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"priority must be an int, got {priority!r}")
        if deadline is not None and deadline.utcoffset() is None:
            raise ValueError(f"deadline {deadline.isoformat()} has no time zone; give an aware datetime")
        if model_override is not None and not 0 < len(model_override) <= MODEL_MAX_LENGTH:
            raise ValueError(f"model must be 1 to {MODEL_MAX_LENGTH} characters")
        _check_storable(payload, key, task_type, model_override, priority=priority)
        utc_deadline = _utc(deadline) if deadline else None
    except ValueError as exc:
        raise InputError(f"task of type {task_type!r}: {exc}") from exc
    return TaskSpec(
        task_type=task_type,
        payload=payload,
        key=resolved_key,
        priority=priority,
        deadline=utc_deadline,
        model_override=model_override,
    )


class _Envelope(BaseModel):
    """The envelope shape of a task line; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    payload: dict[str, Any]
    key: StrictStr | None = Field(None, min_length=1, max_length=KEY_MAX_LENGTH)
    task_type: StrictStr | None = Field(None, min_length=1, max_length=TASK_TYPE_MAX_LENGTH)
    priority: StrictInt = 0
    deadline: AwareDatetime | None = None
    model: StrictStr | None = Field(None, min_length=1, max_length=MODEL_MAX_LENGTH)

    @field_validator("deadline", mode="before")
    @classmethod
    def _deadline_is_text(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError("must be an ISO 8601 string with a UTC offset, e.g. 2026-12-01T06:00:00Z")
        return value


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "line"
        if error["type"] == "extra_forbidden":
            problems.append(
                f'unknown envelope field {where!r} (a line with a "payload" object is an envelope; its fields '
                f'are {", ".join(ENVELOPE_FIELDS)}; to enqueue such an object as is, wrap it in {{"payload": ...}})'
            )
        else:
            problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


_INT32 = 2**31 - 1


def _has_nul(value: Any) -> bool:
    """Whether a NUL character hides anywhere in a JSON value (PostgreSQL cannot store one in text or JSON)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _check_storable(payload: dict[str, Any], *strings: str | None, priority: int) -> None:
    """Refuse what one of the two databases would refuse, so both accept exactly the same files."""
    if _has_nul(payload) or any(s is not None and "\x00" in s for s in strings):
        raise ValueError("contains a NUL character (\\u0000), which the database cannot store")
    if not -_INT32 - 1 <= priority <= _INT32:
        raise ValueError(f"priority {priority} is outside the 32-bit range")


def _utc(deadline: datetime) -> datetime:
    try:
        return deadline.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"deadline {deadline.isoformat()} is out of range in UTC") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_line(text: str, *, default_task_type: str | None, task_types: Container[str] | None = None) -> TaskSpec:
    """Parse one non-blank line; a :class:`ValueError` describes what is wrong with it."""
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError(f"a task line must be a JSON object, got {type(obj).__name__}")
    if not isinstance(obj.get("payload"), dict):  # a bare payload
        task_type = _resolve_task_type(None, default_task_type, task_types)
        if "\\u0000" in text:
            _check_storable(obj, priority=0)
        return TaskSpec(task_type=task_type, payload=obj, key=default_key(task_type, obj))
    try:
        envelope = _Envelope.model_validate(obj)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None
    task_type = _resolve_task_type(envelope.task_type, default_task_type, task_types)
    _check_storable(envelope.payload, envelope.key, task_type, envelope.model, priority=envelope.priority)
    return TaskSpec(
        task_type=task_type,
        payload=envelope.payload,
        key=envelope.key if envelope.key is not None else default_key(task_type, envelope.payload),
        priority=envelope.priority,
        deadline=_utc(envelope.deadline) if envelope.deadline else None,
        model_override=envelope.model,
    )


def _resolve_task_type(given: str | None, default: str | None, known: Container[str] | None) -> str:
    task_type = given if given is not None else default
    if task_type is None:
        raise ValueError('no task type: add "task_type" to the line or give the file a default (--task-type)')
    _check_task_type(task_type)
    if known is not None and task_type not in known:
        raise ValueError(f"unknown task type {task_type!r}; configure it or fix the line")
    return task_type


class TaskFileReader:
    """Stream the tasks of one file, validating as it goes; holds one line at a time.

    Iterating raises :class:`TaskFileError` (``source:line: problem``) at the first bad line. ``check``, if
    given, vets each parsed task further (e.g. against its type's template) by raising ``ValueError`` or
    :class:`InputError`.
    ``lines_read`` counts physical lines read so far, blank ones included. A ``str`` source is a path:
    pass text as ``text.splitlines()``.
    """

    def __init__(
        self,
        source: TaskSource,
        *,
        default_task_type: str | None = None,
        source_name: str | None = None,
        task_types: Container[str] | None = None,
        check: Callable[[TaskSpec], None] | None = None,
    ) -> None:
        self._source = source
        self._check = check
        self.source_name = source_name or (
            str(source) if isinstance(source, str | os.PathLike) else getattr(source, "name", None) or "<stream>"
        )
        if default_task_type is not None:
            try:
                _check_task_type(default_task_type)
            except ValueError as exc:
                raise InputError(f"default {exc}") from None
        self.default_task_type = default_task_type
        self.task_types = task_types
        self.lines_read = 0

    def __iter__(self) -> Iterator[TaskSpec]:
        if isinstance(self._source, str | os.PathLike):
            path = Path(self._source)
            try:
                handle = path.open("rb")
            except OSError as exc:
                raise InputError(f"cannot read task file {path}: {exc.strerror or exc}") from exc
            with handle:
                yield from self._parse(handle)
        else:
            yield from self._parse(self._source)

    def _parse(self, lines: Iterable[str] | Iterable[bytes]) -> Iterator[TaskSpec]:
        for raw in lines:
            self.lines_read += 1
            if isinstance(raw, bytes):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise TaskFileError(self.source_name, self.lines_read, f"not valid UTF-8: {exc}") from None
            else:
                text = raw
            if self.lines_read == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                spec = parse_line(text, default_task_type=self.default_task_type, task_types=self.task_types)
                if self._check is not None:
                    self._check(spec)
            except (ValueError, InputError) as exc:
                raise TaskFileError(self.source_name, self.lines_read, str(exc)) from None
            yield spec
