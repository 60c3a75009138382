"""Fault injection: make the emulated API fail the ways the real one does, on demand.

Endpoint faults (:class:`FaultRule`) hit whole HTTP calls: an API error of any type (429 with a
``retry-after`` header, 500 ``api_error``, 529 ``overloaded_error``, ...), a slow response (a real
delay), or a dropped connection (the response starts and is cut off: after ``after_lines`` result
lines for ``batch_results``, half-way through the body elsewhere — the operation itself still
happens, as when a real connection drops after the server acted). Each rule fires on the next
``times`` matching calls, or with ``probability`` (seeded), or on every call when neither is given.

Request faults (:class:`RequestFault`) act inside batches: chosen requests (by ``custom_ids`` or a
deterministic ``rate``) end ``errored`` with the given error type, or ``expired``.

Result faults (:class:`ResultFault`) corrupt result lines on their way out of ``batch_results``, as a
buggy proxy, a truncated download or a provider bug would: the batch itself (and what it billed) is
unchanged, only the bytes sent differ. Kinds: ``truncated`` (the line cut in half: not JSON),
``unknown_custom_id`` (a custom_id the batch never had), ``missing_usage`` (a succeeded message without
``usage``), ``wrong_types`` (usage counts as strings, content as a string, a non-object error) and
``duplicate`` (the line sent twice).

The fresh-batch fault (:meth:`Faults.not_found_after_create`) reproduces the real API's transient 404: for a
few seconds right after a successful create, ``retrieve`` and ``results`` of the new batch answer
``not_found_error`` exactly as for an unknown batch (ANTHROPIC_API.md, "Operational facts"). The window is
simulated time since the create.

Everything is off by default and switched on by tests (Python API) or ``/_emulator/faults``.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nightbatch.emulator.ids import unit_interval

__all__ = [
    "ENDPOINTS",
    "MALFORMATIONS",
    "Endpoint",
    "ErrorKind",
    "FaultKind",
    "FaultRule",
    "Faults",
    "Malformation",
    "RequestFault",
    "ResultFault",
    "TriggeredFaults",
    "malform_line",
]

Endpoint = Literal[
    "messages",
    "count_tokens",
    "batch_create",
    "batch_retrieve",
    "batch_list",
    "batch_cancel",
    "batch_delete",
    "batch_results",
    "any",
]
ENDPOINTS: tuple[str, ...] = Endpoint.__args__  # type: ignore[attr-defined]
ErrorKind = Literal[
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
]
FaultKind = ErrorKind | Literal["slow", "drop"]

_DEFAULT_MESSAGES = {
    "rate_limit_error": "Number of requests has exceeded your rate limit (emulated fault).",
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
}


class FaultRule(BaseModel):
    """One endpoint fault."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: Endpoint
    kind: FaultKind
    times: int | None = Field(None, ge=1, description="Fire on the next N matching calls.")
    probability: float | None = Field(None, ge=0.0, le=1.0, description="Fire with this (seeded) probability.")
    retry_after: float | None = Field(None, ge=0.0, description="`retry-after` seconds (429 defaults to 1).")
    delay_seconds: float = Field(0.5, ge=0.0, description="Real seconds a `slow` fault waits.")
    after_lines: int = Field(0, ge=0, description="Result lines sent before a `drop` on batch_results.")
    message: str | None = None

    def error_message(self) -> str:
        """Message of the error body."""
        return self.message or _DEFAULT_MESSAGES.get(self.kind, f"{self.kind} (emulated fault)")

    def headers(self) -> dict[str, str]:
        """Extra response headers (``retry-after``)."""
        retry_after = self.retry_after
        if retry_after is None and self.kind == "rate_limit_error":
            retry_after = 1.0
        if retry_after is None:
            return {}
        shown = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        return {"retry-after": shown}


def chosen(custom_ids: frozenset[str], custom_id: str) -> bool:
    """Whether ``custom_id`` is one of ``custom_ids``, or extends one of them by ``-...``.

    nightbatch's custom_ids carry the batch row and installation after the task and attempt
    (``t12-1-0000000003-k3v9q0b2xa``), which a test cannot know in advance: ``t12-1`` chooses it.
    """
    if custom_id in custom_ids:
        return True
    cut = custom_id.rfind("-")
    while cut > 0:
        custom_id = custom_id[:cut]
        if custom_id in custom_ids:
            return True
        cut = custom_id.rfind("-")
    return False


def _hits(custom_ids: frozenset[str] | None, rate: float | None, custom_id: str, *draw: object) -> bool:
    """Whether a fault aimed at ``custom_ids`` (None: all) firing at ``rate`` (None: always) hits ``custom_id``.

    ``draw`` keys the seeded coin, so that each fault, batch and request draws its own.
    """
    if custom_ids is not None and not chosen(custom_ids, custom_id):
        return False
    return rate is None or unit_interval(*draw) < rate


class RequestFault(BaseModel):
    """A fault applied to chosen requests inside batches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: ErrorKind | Literal["expired"]
    custom_ids: frozenset[str] | None = None
    rate: float | None = Field(None, ge=0.0, le=1.0)
    message: str | None = None

    def applies(self, seed: int, position: int, batch_id: str, custom_id: str) -> bool:
        """Whether this fault (the ``position``-th armed one) hits ``custom_id`` of ``batch_id``."""
        return _hits(self.custom_ids, self.rate, custom_id, seed, "request-fault", position, batch_id, custom_id)


Malformation = Literal["truncated", "unknown_custom_id", "missing_usage", "wrong_types", "duplicate"]
MALFORMATIONS: tuple[str, ...] = Malformation.__args__  # type: ignore[attr-defined]


class ResultFault(BaseModel):
    """A corruption applied to chosen result lines as ``batch_results`` streams them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Malformation
    custom_ids: frozenset[str] | None = None
    rate: float | None = Field(None, ge=0.0, le=1.0)

    def applies(self, seed: int, position: int, batch_id: str, custom_id: str) -> bool:
        """Whether this fault (the ``position``-th armed one) hits the line of ``custom_id`` in ``batch_id``."""
        return _hits(self.custom_ids, self.rate, custom_id, seed, "result-fault", position, batch_id, custom_id)


def malform_line(line: bytes, kind: str) -> bytes:
    """``line`` (one JSONL result line with its newline) corrupted the ``kind`` way (see the module docstring).

    ``missing_usage`` and ``wrong_types`` change a succeeded result's message; on other results they
    damage what there is (the ``result`` object loses its ``type``; ``error`` becomes a string).
    """
    body = line.rstrip(b"\n")
    if kind == "truncated":
        return body[: max(1, len(body) // 2)] + b"\n"
    if kind == "duplicate":
        return line + line
    data = json.loads(body)
    result = data.get("result") or {}
    message = result.get("message") if isinstance(result.get("message"), dict) else None
    if kind == "unknown_custom_id":
        data["custom_id"] = f"zz-unknown-{data.get('custom_id', '')}"[:64]
    elif kind == "missing_usage":
        if message is not None:
            message.pop("usage", None)
        else:
            result.pop("type", None)
    elif kind == "wrong_types":
        if message is not None:
            usage = message.get("usage") or {}
            usage["input_tokens"] = str(usage.get("input_tokens"))
            usage["output_tokens"] = None
            message["content"] = "".join(b.get("text", "") for b in message.get("content") or [])
        else:
            result["error"] = "an error, as a string"
    else:
        raise ValueError(f"unknown result malformation {kind!r} (known: {', '.join(MALFORMATIONS)})")
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


@dataclass
class _Armed:
    rule: FaultRule
    remaining: int | None


@dataclass(frozen=True)
class TriggeredFaults:
    """What the faults decided for one call."""

    delay: float = 0.0
    error: FaultRule | None = None
    drop: FaultRule | None = None


class Faults:
    """The live fault switches; thread-safe (tests flip them from another thread)."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(f"faults:{seed}")
        self._rules: list[_Armed] = []
        self._request_faults: list[RequestFault] = []
        self._result_faults: list[ResultFault] = []
        self._fresh_window: float | None = None
        self._created: dict[str, float] = {}
        self.triggered = 0

    def add(self, rule: FaultRule) -> FaultRule:
        """Arm ``rule``."""
        with self._lock:
            self._rules.append(_Armed(rule, rule.times))
        return rule

    def add_request_fault(self, fault: RequestFault) -> RequestFault:
        """Arm a batch-request fault."""
        with self._lock:
            self._request_faults.append(fault)
        return fault

    def add_result_fault(self, fault: ResultFault) -> ResultFault:
        """Arm a result-line fault."""
        with self._lock:
            self._result_faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm everything and reseed."""
        with self._lock:
            self._rules.clear()
            self._request_faults.clear()
            self._result_faults.clear()
            self._fresh_window = None
            self._created.clear()
            self._rng = random.Random(f"faults:{self._seed}")
            self.triggered = 0

    def fail(
        self,
        endpoint: Endpoint,
        kind: ErrorKind = "overloaded_error",
        *,
        times: int | None = 1,
        probability: float | None = None,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> FaultRule:
        """Answer ``endpoint`` with an API error of ``kind`` (next ``times`` calls, or with ``probability``)."""
        return self.add(
            FaultRule(
                endpoint=endpoint,
                kind=kind,
                times=None if probability is not None else times,
                probability=probability,
                retry_after=retry_after,
                message=message,
            )
        )

    def slow(self, endpoint: Endpoint, seconds: float, *, times: int | None = 1) -> FaultRule:
        """Delay ``endpoint`` responses by ``seconds`` of real time."""
        return self.add(FaultRule(endpoint=endpoint, kind="slow", delay_seconds=seconds, times=times))

    def drop(self, endpoint: Endpoint = "batch_results", *, after_lines: int = 1, times: int | None = 1) -> FaultRule:
        """Cut the connection part-way through the response."""
        return self.add(FaultRule(endpoint=endpoint, kind="drop", after_lines=after_lines, times=times))

    def error_requests(
        self,
        outcome: ErrorKind | Literal["expired"] = "api_error",
        *,
        custom_ids: set[str] | frozenset[str] | None = None,
        rate: float | None = None,
        message: str | None = None,
    ) -> RequestFault:
        """End chosen batch requests ``errored`` with ``outcome`` (or ``expired``)."""
        ids = frozenset(custom_ids) if custom_ids is not None else None
        return self.add_request_fault(RequestFault(outcome=outcome, custom_ids=ids, rate=rate, message=message))

    def expire_requests(
        self, *, custom_ids: set[str] | frozenset[str] | None = None, rate: float | None = None
    ) -> RequestFault:
        """Force chosen batch requests to end ``expired``."""
        return self.error_requests("expired", custom_ids=custom_ids, rate=rate)

    def malform_results(
        self,
        kind: Malformation,
        *,
        custom_ids: set[str] | frozenset[str] | None = None,
        rate: float | None = None,
    ) -> ResultFault:
        """Corrupt chosen result lines (by ``custom_ids``, a deterministic ``rate``, or all) as they stream."""
        ids = frozenset(custom_ids) if custom_ids is not None else None
        return self.add_result_fault(ResultFault(kind=kind, custom_ids=ids, rate=rate))

    def not_found_after_create(self, seconds: float = 5.0) -> None:
        """From now on, ``retrieve``/``results`` of a batch answer 404 for ``seconds`` after its create."""
        with self._lock:
            self._fresh_window = seconds

    def note_created(self, batch_id: str, moment: float) -> None:
        """Remember when ``batch_id`` was created (only while the fresh-batch fault is armed)."""
        with self._lock:
            if self._fresh_window is not None:
                self._created[batch_id] = moment

    def hides_fresh_batch(self, batch_id: str, now: float) -> bool:
        """Whether the fresh-batch fault answers 404 for ``batch_id`` at simulated time ``now``."""
        with self._lock:
            created = self._created.get(batch_id)
            if created is None or self._fresh_window is None:
                return False
            if now - created >= self._fresh_window:
                del self._created[batch_id]
                return False
            self.triggered += 1
            return True

    def take(self, endpoint: str) -> TriggeredFaults:
        """Decide (and consume) the faults for one call to ``endpoint``."""
        delay, error, drop = 0.0, None, None
        with self._lock:
            for armed in self._rules:
                rule = armed.rule
                if rule.endpoint not in (endpoint, "any") or armed.remaining == 0:
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                if rule.kind == "slow":
                    delay += rule.delay_seconds
                elif rule.kind == "drop":
                    if drop is not None or error is not None:
                        continue
                    drop = rule
                elif error is None:
                    error = rule
                else:
                    continue
                if armed.remaining is not None:
                    armed.remaining -= 1
                self.triggered += 1
            self._rules = [a for a in self._rules if a.remaining != 0]
        return TriggeredFaults(delay, error, drop)

    def request_outcome(self, batch_id: str, custom_id: str) -> RequestFault | None:
        """The first request fault hitting this batch request, if any."""
        with self._lock:
            faults = list(self._request_faults)
        for position, fault in enumerate(faults):
            if fault.applies(self._seed, position, batch_id, custom_id):
                return fault
        return None

    def result_malformation(self, batch_id: str, custom_id: str) -> str | None:
        """The kind of the first result fault hitting this result line, if any."""
        with self._lock:
            faults = list(self._result_faults)
        for position, fault in enumerate(faults):
            if fault.applies(self._seed, position, batch_id, custom_id):
                return fault.kind
        return None

    def has_result_faults(self) -> bool:
        """Whether any result fault is armed (lets the results stream skip the check per line)."""
        with self._lock:
            return bool(self._result_faults)

    def snapshot(self) -> dict[str, object]:
        """Armed rules and request faults, as JSON-able data."""
        with self._lock:
            return {
                "rules": [{**a.rule.model_dump(mode="json"), "remaining": a.remaining} for a in self._rules],
                "request_faults": [f.model_dump(mode="json") for f in self._request_faults],
                "result_faults": [f.model_dump(mode="json") for f in self._result_faults],
                "not_found_after_create_seconds": self._fresh_window,
                "triggered": self.triggered,
            }
