"""The prompt-cache model: what a request reads, writes and pays, as the real service behaves.

Entries are keyed by (workspace, store, exact prefix up to a breakpoint) — the prefix key already
covers the model and what invalidates it (see :mod:`nightbatch.emulator.prompt`). Rules:

* Breakpoints whose prefix is shorter than the model's minimum cacheable length are ignored (no
  write, no read, no error).
* Lookup: for each breakpoint, the block boundaries from the breakpoint back ``lookback`` blocks are
  checked for a live entry (the API's ~20-block lookback); the longest hit gives
  ``cache_read_input_tokens``.
* Write: the tokens from the hit (or the start) up to the LAST breakpoint are
  ``cache_creation_input_tokens``, split into 5 m / 1 h by the TTL of the breakpoint covering them;
  every breakpoint past the hit gets an entry. ``input_tokens`` is what follows the last breakpoint.
* A hit refreshes the TTL of the entries it used.
* An entry is usable from ``usable_from``: at once for a real-time call, and from the middle of the
  wave for a batch wave (the moment its writer "started responding").

Where a request looks is its :class:`CacheSpace`, chosen by ``EmulatorConfig.batch_cache_model``:

* ``"isolated"`` (default; the docs' "cache storage and sharing" and the live measurements quoted in
  ANTHROPIC_API.md "Late-2026 changes"): real-time calls and batch items use separate stores, so a
  real-time write never warms a batch nor the reverse. A batch item never reads an entry first
  written by an item of its own batch (items run in parallel: a cold batch writes on every item),
  only entries written by earlier batches once usable. Such reads succeed with the best-effort
  ``batch_cache_hit_probability``, drawn per item from the seed, the batch id and the custom_id.
* ``"waves"`` (legacy, for experiments): one store for everything; a batch wave's writes are
  usable by its later waves and by real-time calls, and a real-time write warms a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from nightbatch.emulator.config import EmulatorConfig
from nightbatch.emulator.ids import unit_interval
from nightbatch.emulator.prompt import PromptShape

__all__ = [
    "CacheEntry",
    "CachePlan",
    "CacheSpace",
    "PromptCache",
    "batch_read_allowed",
    "batch_space",
    "realtime_space",
]

REALTIME: Final = "realtime"
BATCH: Final = "batch"
SHARED: Final = "shared"


@dataclass(frozen=True, slots=True)
class CacheSpace:
    """Where one request reads and writes: its workspace, the store, and the batch asking (if any)."""

    workspace: str
    store: str
    batch_id: str | None = None  # what only this batch's own items wrote is not readable by it


def realtime_space(config: EmulatorConfig, workspace: str) -> CacheSpace:
    """The cache a ``/v1/messages`` call uses."""
    return CacheSpace(workspace, SHARED if config.batch_cache_model == "waves" else REALTIME)


def batch_space(config: EmulatorConfig, workspace: str, batch_id: str) -> CacheSpace:
    """The cache the items of batch ``batch_id`` use."""
    if config.batch_cache_model == "waves":
        return CacheSpace(workspace, SHARED)
    return CacheSpace(workspace, BATCH, batch_id)


def batch_read_allowed(config: EmulatorConfig, batch_id: str, custom_id: str) -> bool:
    """Whether this batch item's best-effort cache lookup succeeds (deterministic under the seed)."""
    chance = config.batch_cache_hit_probability
    if chance >= 1.0:
        return True
    return unit_interval(config.seed, "batch-cache-read", batch_id, custom_id) < chance


@dataclass(slots=True)
class CacheEntry:
    """One cached prefix, and when each of its writers made it usable.

    ``writers`` maps the batch whose item wrote the entry (None: a real-time call or the shared store)
    to the moment that write became usable; a batch reads only what another writer made usable.
    """

    expires_at: float
    ttl: int
    writers: dict[str | None, float]

    @property
    def usable_from(self) -> float:
        """When the first write became usable."""
        return min(self.writers.values())

    def usable_by(self, batch_id: str | None, now: float) -> bool:
        """Whether a request of ``batch_id`` (None: real-time or shared store) may read this at ``now``."""
        if now >= self.expires_at:
            return False
        return any(moment <= now and (writer is None or writer != batch_id) for writer, moment in self.writers.items())


@dataclass(frozen=True, slots=True)
class CachePlan:
    """Usage split of one request, and the cache effects to apply once it starts responding."""

    input_tokens: int
    cache_read_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int
    hits: tuple[tuple[int, int], ...]  # (key, ttl) entries used, to refresh
    writes: tuple[tuple[int, int], ...]  # (key, ttl) entries to create

    @property
    def cache_creation_input_tokens(self) -> int:
        """Tokens written to the cache (both TTLs)."""
        return self.ephemeral_5m_input_tokens + self.ephemeral_1h_input_tokens


class PromptCache:
    """All live cache entries, per workspace and store."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, int], CacheEntry] = {}
        self.reads = 0
        self.writes = 0

    def _live(self, space: CacheSpace, key: int, now: float) -> CacheEntry | None:
        entry = self.entries.get((space.workspace, space.store, key))
        # A batch never sees its own items' writes: they ran in parallel with the reader.
        return entry if entry is not None and entry.usable_by(space.batch_id, now) else None

    def plan(
        self,
        space: CacheSpace,
        shape: PromptShape,
        min_tokens: int,
        now: float,
        lookback: int,
        *,
        can_read: bool = True,
    ) -> CachePlan:
        """Work out reads and writes for ``shape`` at ``now`` without changing the cache.

        ``can_read=False`` is a best-effort miss: nothing is read or refreshed, every breakpoint is written.
        """
        prefix = shape.prefix_tokens
        valid = [(pos, ttl) for pos, ttl in shape.breakpoints if prefix[pos] >= min_tokens]
        if not valid:
            return CachePlan(shape.total_tokens, 0, 0, 0, (), ())
        hit = -1
        for pos, _ in reversed(valid) if can_read else ():
            for candidate in range(pos, max(-1, pos - lookback), -1):
                if candidate <= hit or prefix[candidate] < min_tokens:
                    break
                if self._live(space, shape.keys[candidate], now) is not None:
                    hit = candidate
                    break
        read = prefix[hit] if hit >= 0 else 0
        by_ttl = {300: 0, 3600: 0}
        covered = read
        writes: list[tuple[int, int]] = []
        hits: list[tuple[int, int]] = []
        for pos, ttl in valid:
            if prefix[pos] > read:
                by_ttl[ttl] += prefix[pos] - covered
                covered = prefix[pos]
                writes.append((shape.keys[pos], ttl))
            elif self._live(space, shape.keys[pos], now) is not None:
                hits.append((shape.keys[pos], ttl))
        if hit >= 0:
            hits.append((shape.keys[hit], 0))
        last = valid[-1][0]
        return CachePlan(shape.total_tokens - prefix[last], read, by_ttl[300], by_ttl[3600], tuple(hits), tuple(writes))

    def commit(self, space: CacheSpace, plan: CachePlan, *, now: float, usable_from: float) -> None:
        """Apply ``plan``: refresh the entries it read at ``now``, create its writes from ``usable_from``."""
        if plan.cache_read_input_tokens:
            self.reads += 1
        for key, ttl in plan.hits:
            entry = self.entries.get((space.workspace, space.store, key))
            if entry is not None:
                entry.ttl = max(entry.ttl, ttl)
                entry.expires_at = max(entry.expires_at, now + entry.ttl)
        for key, ttl in plan.writes:
            self.writes += 1
            slot = (space.workspace, space.store, key)
            entry = self.entries.get(slot)
            expires = usable_from + ttl
            if entry is None or entry.expires_at <= now:
                self.entries[slot] = CacheEntry(expires, ttl, {space.batch_id: usable_from})
            else:  # a live entry written again (a best-effort miss, or a parallel writer)
                earlier = entry.writers.get(space.batch_id)
                entry.writers[space.batch_id] = usable_from if earlier is None else min(earlier, usable_from)
                entry.expires_at = max(entry.expires_at, expires)
                entry.ttl = max(entry.ttl, ttl)

    def prune(self, now: float) -> None:
        """Drop expired entries."""
        dead = [key for key, entry in self.entries.items() if entry.expires_at <= now]
        for key in dead:
            del self.entries[key]
