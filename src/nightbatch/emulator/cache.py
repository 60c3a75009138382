"""The prompt-cache model: what a request reads, writes and pays, as the real service behaves.

Entries are keyed by (workspace, exact prefix up to a breakpoint) — the prefix key already covers
the model and everything before the breakpoint (see :mod:`nightbatch.emulator.prompt`). Rules:

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
  wave for a batch wave (the moment its writer "started responding"), so requests in the same wave
  all miss and each pays the write, while later waves hit.
"""

from __future__ import annotations

from dataclasses import dataclass

from nightbatch.emulator.prompt import PromptShape

__all__ = ["CacheEntry", "CachePlan", "PromptCache"]


@dataclass(slots=True)
class CacheEntry:
    """One cached prefix."""

    usable_from: float
    expires_at: float
    ttl: int


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
    """All live cache entries, per workspace."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, int], CacheEntry] = {}
        self.reads = 0
        self.writes = 0

    def _live(self, workspace: str, key: int, now: float) -> CacheEntry | None:
        entry = self.entries.get((workspace, key))
        if entry is None or not (entry.usable_from <= now < entry.expires_at):
            return None
        return entry

    def plan(self, workspace: str, shape: PromptShape, min_tokens: int, now: float, lookback: int) -> CachePlan:
        """Work out reads and writes for ``shape`` at ``now`` without changing the cache."""
        prefix = shape.prefix_tokens
        valid = [(pos, ttl) for pos, ttl in shape.breakpoints if prefix[pos] >= min_tokens]
        if not valid:
            return CachePlan(shape.total_tokens, 0, 0, 0, (), ())
        hit = -1
        for pos, _ in reversed(valid):
            for candidate in range(pos, max(-1, pos - lookback), -1):
                if candidate <= hit or prefix[candidate] < min_tokens:
                    break
                if self._live(workspace, shape.keys[candidate], now) is not None:
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
            elif self._live(workspace, shape.keys[pos], now) is not None:
                hits.append((shape.keys[pos], ttl))
        if hit >= 0:
            hits.append((shape.keys[hit], 0))
        last = valid[-1][0]
        return CachePlan(shape.total_tokens - prefix[last], read, by_ttl[300], by_ttl[3600], tuple(hits), tuple(writes))

    def commit(self, workspace: str, plan: CachePlan, *, now: float, usable_from: float) -> None:
        """Apply ``plan``: refresh the entries it read at ``now``, create its writes from ``usable_from``."""
        if plan.cache_read_input_tokens:
            self.reads += 1
        for key, ttl in plan.hits:
            entry = self.entries.get((workspace, key))
            if entry is not None:
                entry.ttl = max(entry.ttl, ttl)
                entry.expires_at = max(entry.expires_at, now + entry.ttl)
        for key, ttl in plan.writes:
            self.writes += 1
            entry = self.entries.get((workspace, key))
            expires = usable_from + ttl
            if entry is None or entry.expires_at <= now:
                self.entries[(workspace, key)] = CacheEntry(usable_from, expires, ttl)
            else:
                entry.usable_from = min(entry.usable_from, usable_from)
                entry.expires_at = max(entry.expires_at, expires)
                entry.ttl = max(entry.ttl, ttl)

    def prune(self, now: float) -> None:
        """Drop expired entries."""
        dead = [key for key, entry in self.entries.items() if entry.expires_at <= now]
        for key in dead:
            del self.entries[key]
