"""A small typed wrapper around the official ``anthropic`` SDK: everything nightbatch asks of the API.

The real service and the local emulator differ only in ``base_url``; there is no second code path.
SDK exceptions are translated into :mod:`nightbatch.errors` types so callers decide on *retryable* vs
*permanent*, and on ``maybe_applied``: whether a failed call might still have taken effect (a timeout
or a 5xx after the body was sent), which matters for batch creation.

Batch creation runs with the SDK's automatic retries **off**: a retried create after a lost response
would create a second batch and bill it twice. The submitter handles that case from the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import anthropic
import httpx2
from anthropic.types.messages import MessageBatch

from nightbatch.errors import PermanentProviderError, ProviderError, RetryableProviderError

__all__ = [
    "FRESH_BATCH_404_GRACE",
    "BatchBody",
    "BatchInfo",
    "ClaudeClient",
    "RequestCounts",
    "not_visible_yet",
    "translate_error",
]

_RESULT_CHUNK_BYTES = 256 * 1024  # big enough that per-chunk overhead vanishes, small enough to stay flat


class BatchBody(Protocol):
    """A batch create body that serializes itself (``nightbatch.submit.pack.PackedBatch``)."""

    @property
    def payload_bytes(self) -> int: ...

    @property
    def requests(self) -> Sequence[object]: ...

    def body_chunks(self) -> Iterator[bytes]:
        """``{"requests":[…]}`` in pieces whose lengths add up to ``payload_bytes``."""
        ...


@dataclass(frozen=True)
class RequestCounts:
    processing: int = 0
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0

    @property
    def total(self) -> int:
        return self.processing + self.succeeded + self.errored + self.canceled + self.expired


@dataclass(frozen=True)
class BatchInfo:
    """What the provider says about one batch."""

    id: str
    processing_status: str
    counts: RequestCounts
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    results_url: str | None

    @classmethod
    def from_sdk(cls, batch: MessageBatch) -> BatchInfo:
        c = batch.request_counts
        return cls(
            id=batch.id,
            processing_status=batch.processing_status,
            counts=RequestCounts(c.processing, c.succeeded, c.errored, c.canceled, c.expired),
            created_at=batch.created_at,
            expires_at=batch.expires_at,
            ended_at=batch.ended_at,
            results_url=batch.results_url,
        )


def translate_error(exc: Exception, what: str) -> ProviderError:
    """Map an SDK exception to a nightbatch error that says what failed and whether to retry."""
    if isinstance(exc, anthropic.APITimeoutError | anthropic.APIConnectionError):
        return RetryableProviderError(f"{what}: could not reach the API ({exc})", maybe_applied=True)
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        error_type = None
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error_type = body["error"].get("type")
        message = f"{what}: HTTP {status} {error_type or ''}: {exc.message}".replace("  ", " ")
        if status in (408, 409, 429, 529):
            # Rejected before processing: the call did not take effect.
            return RetryableProviderError(message, status_code=status, error_type=error_type)
        if status >= 500:
            return RetryableProviderError(message, status_code=status, error_type=error_type, maybe_applied=True)
        return PermanentProviderError(message, status_code=status, error_type=error_type)
    return PermanentProviderError(f"{what}: {exc}")


# The API answers `retrieve`/`results` of a batch with 404 for "a few seconds" right after a successful
# create (ANTHROPIC_API.md, operational facts). Two minutes covers that and clock skew between the
# provider's `created_at` and ours; a 404 later than this is a real one.
FRESH_BATCH_404_GRACE: Final = timedelta(seconds=120)


def not_visible_yet(exc: ProviderError, created_at: datetime | None, *, now: datetime | None = None) -> bool:
    """Whether ``exc`` is the transient 404 of a batch created (per the provider) at ``created_at``.

    Such a batch is not gone: look again at the next poll.
    """
    if exc.status_code != 404 or created_at is None:
        return False
    moment = now or datetime.now(UTC)
    return moment - created_at < FRESH_BATCH_404_GRACE


_SEND_BYTES = 256 * 1024


def _coalesced(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` joined into pieces of about 256 KiB: one socket write per request entry (two per request
    with the commas) was 200,000 system calls for a 100,000-request batch (issue 20)."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= _SEND_BYTES:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


class ClaudeClient:
    """Everything nightbatch asks of the Messages and Message Batches APIs."""

    def __init__(self, *, api_key: str, base_url: str | None = None, max_retries: int = 2, timeout: float = 600.0):
        self.base_url = base_url
        self._sdk = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout)

    @property
    def sdk(self) -> anthropic.Anthropic:
        return self._sdk

    def close(self) -> None:
        self._sdk.close()

    # -- batches ----------------------------------------------------------------------------------
    def create_batch(self, requests: Sequence[dict[str, Any]] | BatchBody) -> BatchInfo:
        """Create a batch, once: no automatic retry (see the module docstring).

        ``requests``: the request dicts, or a :class:`BatchBody` whose bytes are sent as they are made.
        Given dicts, the SDK walks and serializes them all before sending: for a batch near the 256 MB limit,
        over half a gigabyte more memory and seconds of CPU (``docs/benchmarks.md``). A body is streamed
        through the same SDK client (its headers, timeouts and error types), with its exact length.
        """
        sdk = self._sdk.with_options(max_retries=0)
        count = len(requests) if isinstance(requests, Sequence) else len(requests.requests)
        try:
            if isinstance(requests, Sequence):
                batch = sdk.messages.batches.create(requests=requests)  # type: ignore[arg-type]
            else:
                length = {"content-type": "application/json", "content-length": str(requests.payload_bytes)}
                batch = sdk.post(
                    "/v1/messages/batches", cast_to=MessageBatch, content=_coalesced(requests.body_chunks()),
                    options={"headers": length},
                )  # fmt: skip
        except anthropic.AnthropicError as exc:
            raise translate_error(exc, f"creating a batch of {count} requests") from exc
        return BatchInfo.from_sdk(batch)

    def retrieve_batch(self, batch_id: str) -> BatchInfo:
        try:
            return BatchInfo.from_sdk(self._sdk.messages.batches.retrieve(batch_id))
        except anthropic.AnthropicError as exc:
            raise translate_error(exc, f"retrieving batch {batch_id}") from exc

    def cancel_batch(self, batch_id: str) -> BatchInfo:
        try:
            return BatchInfo.from_sdk(self._sdk.messages.batches.cancel(batch_id))
        except anthropic.AnthropicError as exc:
            raise translate_error(exc, f"canceling batch {batch_id}") from exc

    def list_batches(self, *, created_after: datetime | None = None) -> Iterator[BatchInfo]:
        """Batches newest first, stopping at the first one created before ``created_after``."""
        try:
            for batch in self._sdk.messages.batches.list(limit=100):
                if created_after is not None and batch.created_at < created_after:
                    return
                yield BatchInfo.from_sdk(batch)
        except anthropic.AnthropicError as exc:
            raise translate_error(exc, "listing batches") from exc

    @contextmanager
    def result_lines(self, batch_id: str) -> Iterator[Iterator[str]]:
        """The batch's results as raw JSONL lines, streamed (never the whole file in memory)."""
        with self._results(batch_id) as response:
            yield (line for line in response.iter_lines() if line)

    @contextmanager
    def result_chunks(self, batch_id: str) -> Iterator[Iterator[bytes]]:
        """The batch's results file as it arrives: raw bytes, JSONL whose lines may span chunks.

        For archiving the file as it is and splitting it once: ``result_lines`` decodes every line to text.
        """
        with self._results(batch_id) as response:
            yield response.iter_bytes(_RESULT_CHUNK_BYTES)

    @contextmanager
    def _results(self, batch_id: str) -> Iterator[Any]:
        """The streamed results response; errors while it is open (and read) become nightbatch's."""
        try:
            with self._sdk.messages.batches.with_streaming_response.results(batch_id) as response:
                yield response
        except anthropic.AnthropicError as exc:
            raise translate_error(exc, f"downloading results of batch {batch_id}") from exc
        except httpx2.TransportError as exc:
            # A connection cut mid-stream surfaces from the transport, after the SDK handed us the body.
            raise RetryableProviderError(
                f"downloading results of batch {batch_id}: connection lost mid-stream ({exc})"
            ) from exc

    # -- real time --------------------------------------------------------------------------------
    def create_message(self, params: dict[str, Any], *, max_retries: int | None = None) -> dict[str, Any]:
        """One real-time Messages call. ``max_retries=0`` when every attempt must be accounted for: a
        retried call whose first answer was lost is billed twice."""
        sdk = self._sdk if max_retries is None else self._sdk.with_options(max_retries=max_retries)
        try:
            message = sdk.messages.create(**params)
        except anthropic.AnthropicError as exc:
            raise translate_error(exc, f"real-time request to {params.get('model')}") from exc
        dumped: dict[str, Any] = message.model_dump(mode="json")
        return dumped

    def count_tokens(self, params: dict[str, Any]) -> int:
        """Prompt tokens of ``params`` (model, system, tools, messages) per the token-counting endpoint."""
        keys = ("model", "system", "tools", "messages")
        try:
            counted = self._sdk.messages.count_tokens(**{k: params[k] for k in keys if k in params})
        except anthropic.AnthropicError as exc:
            raise translate_error(exc, f"counting tokens for {params.get('model')}") from exc
        return counted.input_tokens
