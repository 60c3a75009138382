"""Cache hit rates from the ledger: per task type, per batch, over a rolling window of runs, and drops.

**Cache hit rate** = cache-read tokens / (cache-read + cache-write tokens). Its denominator is the prompt
tokens that were *eligible* for caching (those before a cache breakpoint, which the API reports either as
read from the cache or as written to it); tokens after the last breakpoint (``input_tokens``) are never
cacheable and are left out. Both counts come from the API's usage on every billed response, never from
an assumption. A group with no eligible tokens (caching off, or a prefix below the model's minimum) has
no hit rate (None), not 0.

**Rolling hit rate** of a task type: the same ratio over its task responses in the last ``window`` runs
*before* the selection in which that type had eligible tokens (token-weighted: a large run weighs more
than a small one). A type is **flagged** when its hit rate in the selection is more than ``drop_points``
percentage points below its rolling rate, given at least ``min_runs`` runs of history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from nightbatch.db.models import UsagePurpose
from nightbatch.report.query import BatchCache, LedgerGroup, RunCache, Selection

__all__ = [
    "DEFAULT_DROP_POINTS",
    "DEFAULT_MIN_RUNS",
    "DEFAULT_WINDOW",
    "CacheReport",
    "RunPoint",
    "TypeCache",
    "cache_report",
    "hit_rate",
]

DEFAULT_WINDOW = 7
DEFAULT_DROP_POINTS = 15.0
DEFAULT_MIN_RUNS = 3


def hit_rate(read_tokens: int, write_tokens: int) -> float | None:
    """cache-read / (cache-read + cache-write) tokens; None when nothing was eligible for caching."""
    eligible = read_tokens + write_tokens
    return read_tokens / eligible if eligible else None


@dataclass(frozen=True)
class TypeCache:
    """A task type's hit rate in the selection against its rolling rate over recent runs."""

    task_type: str
    cache_read_tokens: int
    cache_write_tokens: int
    rolling_read_tokens: int
    rolling_write_tokens: int
    rolling_runs: int
    """Runs in the rolling window (at most ``window``; fewer when the type has less history)."""
    flagged: bool

    @property
    def hit_rate(self) -> float | None:
        return hit_rate(self.cache_read_tokens, self.cache_write_tokens)

    @property
    def rolling_hit_rate(self) -> float | None:
        return hit_rate(self.rolling_read_tokens, self.rolling_write_tokens)

    @property
    def drop_points(self) -> float | None:
        """How many percentage points the selection is below the rolling rate (negative: above)."""
        now, before = self.hit_rate, self.rolling_hit_rate
        return None if now is None or before is None else (before - now) * 100


@dataclass(frozen=True)
class RunPoint:
    """One run's hit rate for one task type: a point of the hit-rate-over-time chart."""

    run_id: int
    started_at: datetime
    task_type: str
    hit_rate: float
    in_selection: bool


@dataclass(frozen=True)
class CacheReport:
    """Hit rates of a selection: overall (every usage row), per task type, per batch, and over time."""

    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    by_type: list[TypeCache] = field(default_factory=list)
    by_batch: list[BatchCache] = field(default_factory=list)
    history: list[RunPoint] = field(default_factory=list)
    window: int = DEFAULT_WINDOW
    drop_points: float = DEFAULT_DROP_POINTS
    min_runs: int = DEFAULT_MIN_RUNS

    @property
    def hit_rate(self) -> float | None:
        return hit_rate(self.cache_read_tokens, self.cache_write_tokens)

    @property
    def warnings(self) -> list[str]:
        """One line per flagged task type."""
        lines = []
        for t in self.by_type:
            now, before, drop = t.hit_rate, t.rolling_hit_rate, t.drop_points
            if t.flagged and now is not None and before is not None and drop is not None:
                lines.append(
                    f"cache hit rate of {t.task_type} fell to {now:.1%}, {drop:.1f} points below its rolling "
                    f"{before:.1%} over the previous {t.rolling_runs} runs: check that its prefix is still "
                    "byte-identical and above the model's minimum cacheable length"
                )
        return lines


def cache_report(
    groups: Iterable[LedgerGroup],
    batches: Iterable[BatchCache],
    runs: Iterable[RunCache],
    selection: Selection,
    *,
    window: int = DEFAULT_WINDOW,
    drop_points: float = DEFAULT_DROP_POINTS,
    min_runs: int = DEFAULT_MIN_RUNS,
) -> CacheReport:
    """Hit rates for ``selection`` from its ledger groups and batches and the per-run history before it."""
    if window < 1:
        raise ValueError(f"the rolling window must be at least 1 run, got {window}")
    read = write = 0
    by_type: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for g in groups:
        w = g.usage.cache_write_5m_tokens + g.usage.cache_write_1h_tokens
        read += g.usage.cache_read_tokens
        write += w
        if g.purpose == UsagePurpose.TASK and g.task_type is not None:
            r0, w0 = by_type[g.task_type]
            by_type[g.task_type] = (r0 + g.usage.cache_read_tokens, w0 + w)

    history: dict[str, list[RunCache]] = defaultdict(list)
    points = []
    for r in runs:  # oldest first
        rate = hit_rate(r.cache_read_tokens, r.cache_write_tokens)
        if rate is None:
            continue
        before = selection.precedes(r.run_id, r.started_at)
        if before:
            history[r.task_type].append(r)
        points.append(RunPoint(r.run_id, r.started_at, r.task_type, rate, in_selection=not before))

    types = []
    for task_type in sorted(by_type):
        t_read, t_write = by_type[task_type]
        recent = history[task_type][-window:]
        entry = TypeCache(
            task_type=task_type,
            cache_read_tokens=t_read,
            cache_write_tokens=t_write,
            rolling_read_tokens=sum(r.cache_read_tokens for r in recent),
            rolling_write_tokens=sum(r.cache_write_tokens for r in recent),
            rolling_runs=len(recent),
            flagged=False,
        )
        drop = entry.drop_points
        if drop is not None and len(recent) >= min_runs and drop > drop_points:
            entry = replace(entry, flagged=True)
        types.append(entry)
    return CacheReport(
        cache_read_tokens=read,
        cache_write_tokens=write,
        by_type=types,
        by_batch=list(batches),
        history=points,
        window=window,
        drop_points=drop_points,
        min_runs=min_runs,
    )
