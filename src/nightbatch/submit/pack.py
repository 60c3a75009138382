"""Packing requests into batches within the Message Batches limits.

Requests are grouped by (model, prefix hash) so each group's requests sit contiguously in as few
batches as possible (cache entries are per model and prefix; a shared prefix processed together hits).
Groups are then cut into batches of at most 100,000 requests and at most the byte budget. Sizes are
measured on the exact bytes the SDK sends (compact JSON, UTF-8: see :func:`canonical_json`), plus the
``{"requests":[...]}`` envelope and commas, with a safety margin under the API's 256 MB limit. Measuring
costs only each request's own tail: the shared prefix is serialized once (see
:meth:`~nightbatch.build.requests.BuiltRequest.entry_size`), and :meth:`PackedBatch.body_chunks` streams
the body from the same pieces, never holding it whole.

A request too large for any batch on its own is returned in ``too_large`` so its task can fail with a
clear error instead of breaking a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from nightbatch.build.prefix import CacheTTL
from nightbatch.build.requests import BuiltRequest

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_REQUESTS", "PackResult", "PackedBatch", "group_key", "pack"]

MAX_BATCH_REQUESTS = 100_000
API_MAX_BATCH_BYTES = 256 * 1024 * 1024
# 1% under the documented limit: the API counts the HTTP body, and proxies may add nothing, but a
# request rejected with 413 costs a whole resubmission, so we keep some room.
MAX_BATCH_BYTES = int(API_MAX_BATCH_BYTES * 0.99)
_ENVELOPE_BYTES = len(b'{"requests":[]}')


def group_key(request: BuiltRequest) -> tuple[str, str]:
    return (request.model, request.prefix.hash)


@dataclass
class PackedBatch:
    """One batch to submit: requests of one model and one prefix, with its TTL."""

    model: str
    prefix_hash: str
    ttl: CacheTTL | None
    requests: list[BuiltRequest] = field(default_factory=list)
    payload_bytes: int = _ENVELOPE_BYTES

    def recount(self) -> None:
        """Recompute ``payload_bytes`` after requests were removed."""
        sizes = [r.entry_size(self.ttl) for r in self.requests]
        self.payload_bytes = _ENVELOPE_BYTES + sum(sizes) + max(0, len(sizes) - 1)

    def entries(self) -> list[dict[str, object]]:
        return [r.entry(self.ttl) for r in self.requests]

    def body_chunks(self) -> Iterator[bytes]:
        """The create body ``{"requests":[…]}``, byte for byte as the SDK would send it, one entry at a time.

        Their lengths add up to ``payload_bytes``; nothing bigger than one entry is held in memory.
        """
        yield b'{"requests":['
        for index, request in enumerate(self.requests):
            if index:
                yield b","
            yield request.entry_bytes(self.ttl)
        yield b"]}"


@dataclass
class PackResult:
    batches: list[PackedBatch]
    too_large: list[tuple[BuiltRequest, int]]


def pack(
    requests: Iterable[BuiltRequest],
    ttl_for_group: Callable[[tuple[str, str], list[BuiltRequest]], CacheTTL | None],
    *,
    max_requests: int = MAX_BATCH_REQUESTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> PackResult:
    """Group ``requests`` by (model, prefix), ask ``ttl_for_group`` for each group's TTL, cut into batches."""
    groups: dict[tuple[str, str], list[BuiltRequest]] = {}
    for request in requests:
        groups.setdefault(group_key(request), []).append(request)
    batches: list[PackedBatch] = []
    too_large: list[tuple[BuiltRequest, int]] = []
    for key, members in groups.items():
        ttl = ttl_for_group(key, members)
        current = PackedBatch(model=key[0], prefix_hash=key[1], ttl=ttl)
        for request in members:
            size = request.entry_size(ttl)
            if _ENVELOPE_BYTES + size > max_bytes:
                too_large.append((request, size))
                continue
            separator = 1 if current.requests else 0
            if len(current.requests) >= max_requests or current.payload_bytes + separator + size > max_bytes:
                batches.append(current)
                current = PackedBatch(model=key[0], prefix_hash=key[1], ttl=ttl)
                separator = 0
            current.requests.append(request)
            current.payload_bytes += separator + size
        if current.requests:
            batches.append(current)
    return PackResult(batches, too_large)
