"""Every error nightbatch raises, in one tree.

::

    NightbatchError                  base: catch this to catch everything of ours
    ├── ConfigError                  you misconfigured something (settings, task types, price table)
    │   └── UnknownModelError        a model id the price table / catalog does not know
    ├── InputError                   a task you gave us is malformed
    │   └── TaskFileError            ... in a file: carries the file name and line number
    ├── ProviderError                the Anthropic API failed
    │   ├── RetryableProviderError   transient (429, 5xx, 529, timeouts): retrying may succeed
    │   └── PermanentProviderError   the request itself is wrong (400, 401, 403, 404, 413)
    ├── StorageError                 the object store failed
    ├── StateError                   the database disagrees with what an operation expected
    └── RunFailedError               the outcome policy failed a run: a Failed flow state's data, with its totals

Messages name the thing (file and line, task id, batch id) and, where we can tell, what to do.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "InputError",
    "NightbatchError",
    "PermanentProviderError",
    "ProviderError",
    "RetryableProviderError",
    "RunFailedError",
    "StateError",
    "StorageError",
    "TaskFileError",
    "UnknownModelError",
]


class NightbatchError(Exception):
    """Base class of every error nightbatch raises on purpose."""


class ConfigError(NightbatchError):
    """Settings, task-type config or a data table is invalid; fix the named file or variable."""


class UnknownModelError(ConfigError):
    """A model id that the price table or model catalog has no row for."""

    def __init__(self, model: str, source: str, known: list[str]) -> None:
        self.model = model
        self.source = source
        super().__init__(
            f"unknown model {model!r}: no row in {source} (known: {', '.join(sorted(known))}). "
            "Add a row to that file or point NIGHTBATCH_PRICE_TABLE at a table that has it."
        )


class InputError(NightbatchError):
    """A task payload or task definition is malformed."""


class TaskFileError(InputError):
    """A task file is malformed; nothing from that file was enqueued."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        self.source = source
        self.line = line
        self.problem = problem
        super().__init__(f"{source}:{line}: {problem}")


class ProviderError(NightbatchError):
    """The Anthropic API answered with an error or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        maybe_applied: bool = False,
    ) -> None:
        self.status_code = status_code
        self.error_type = error_type
        # True when the call may have taken effect despite the error (timeout, 5xx after sending).
        self.maybe_applied = maybe_applied
        super().__init__(message)


class RetryableProviderError(ProviderError):
    """A transient provider failure (rate limit, overload, 5xx, timeout): safe to retry later."""


class PermanentProviderError(ProviderError):
    """A provider failure that retrying as-is will not fix (bad request, auth, too large)."""


class StorageError(NightbatchError):
    """Reading or writing the object store failed."""


class RunFailedError(NightbatchError):
    """The outcome policy failed a run (or a flow's step): the data of its Failed state, carrying its totals.

    A Failed state's data must be an exception: Prefect raises it when a deployment's flow run ends (the last
    line of a failed night's log then names the verdict), and a dict there makes Prefect raise a TypeError
    about the dict instead. Callers that read the state without raising take ``totals`` from it.
    """

    def __init__(self, message: str, totals: dict[str, Any]) -> None:
        super().__init__(message, totals)  # both in args: the exception pickles (Prefect may persist it)
        self.message = message
        self.totals = totals

    def __str__(self) -> str:
        return self.message


class StateError(NightbatchError):
    """The database is not in the state an operation requires (e.g. an unrecorded batch)."""
