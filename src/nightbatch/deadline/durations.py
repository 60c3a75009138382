"""Measured batch durations, and when what is in flight should end (p50 / p95).

Samples come from the batches nightbatch has run (:mod:`nightbatch.db.durations`). They are grouped by
model, size bucket and UTC hour of submission; a forecast uses the narrowest group holding at least
``MIN_SAMPLES`` batches, widening to (model, size), then (model), then every batch. With no history at
all there is no forecast: nothing is guessed (a guess would send tasks real-time for nothing).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nightbatch.db import Engine
from nightbatch.db.durations import BatchDuration, InFlightBatch, finished_batches, in_flight_batches

__all__ = [
    "MIN_SAMPLES",
    "DurationModel",
    "Expected",
    "Spread",
    "describe_all",
    "expected_finishes",
    "forecast_lines",
    "size_bucket",
]

MIN_SAMPLES = 3
_BUCKETS = ((100, "1-100"), (1_000, "101-1k"), (10_000, "1k-10k"), (100_000, "10k-100k"))


def size_bucket(requests: int) -> str:
    """The size class of a batch of ``requests`` requests."""
    for top, name in _BUCKETS:
        if requests <= top:
            return name
    return "over-100k"


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Spread:
    """The measured durations of one group: how many, median and 95th percentile (seconds)."""

    samples: int
    p50: float
    p95: float
    scope: str  # which group answered: "model/size/hour", "model/size", "model" or "all"


@dataclass
class DurationModel:
    """Durations grouped at every level of detail a forecast may fall back to."""

    samples: list[BatchDuration] = field(default_factory=list)
    _groups: dict[tuple[str, ...], list[float]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        groups: dict[tuple[str, ...], list[float]] = defaultdict(list)
        for s in self.samples:
            bucket, hour = size_bucket(s.requests), f"{s.submitted_at.hour:02d}h"
            for key in ((s.model, bucket, hour), (s.model, bucket), (s.model,), ()):
                groups[key].append(s.seconds)
        self._groups = {k: sorted(v) for k, v in groups.items()}

    @classmethod
    def load(cls, engine: Engine, *, since: datetime | None = None) -> DurationModel:
        """From the ended batches in the database."""
        return cls(finished_batches(engine, since=since))

    def spread(self, model: str, requests: int, submitted_at: datetime | None = None) -> Spread | None:
        """p50/p95 for a batch like this one, from the narrowest group with enough samples; None without history."""
        bucket = size_bucket(requests)
        keys: list[tuple[tuple[str, ...], str]] = []
        if submitted_at is not None:
            keys.append(((model, bucket, f"{submitted_at.hour:02d}h"), "model/size/hour"))
        keys += [((model, bucket), "model/size"), ((model,), "model"), ((), "all")]
        for key, scope in keys:
            values = self._groups.get(key)
            if values and (len(values) >= MIN_SAMPLES or key == ()):
                return Spread(len(values), _percentile(values, 0.5), _percentile(values, 0.95), scope)
        return None

    def longest_p95(self) -> float | None:
        """The largest p95 any forecast could answer (seconds), or None without history."""
        found = [_percentile(v, 0.95) for k, v in self._groups.items() if v and (len(v) >= MIN_SAMPLES or k == ())]
        return max(found, default=None)

    def groups(self) -> list[tuple[str, str, int, float, float]]:
        """(model, size bucket, samples, p50, p95) per model and size: what the report shows."""
        rows = []
        for key, values in sorted(self._groups.items()):
            if len(key) == 2:
                rows.append((key[0], key[1], len(values), _percentile(values, 0.5), _percentile(values, 0.95)))
        return rows


@dataclass(frozen=True)
class Expected:
    """When one in-flight batch should end: by p50 and by p95 (never before ``now``)."""

    batch: InFlightBatch
    p50_at: datetime | None
    p95_at: datetime | None
    spread: Spread | None
    overdue: bool = False  # running longer than the p95 of batches like it (the times above are then "now")

    def describe(self) -> str:
        b = self.batch
        if self.p50_at is None or self.p95_at is None or self.spread is None:
            return f"batch {b.id} ({b.model}, {b.requests:,} requests): no finished batches measured yet"
        if self.overdue:
            return (
                f"batch {b.id} ({b.model}, {b.requests:,} requests): OVERDUE, running longer than the p95 "
                f"({self.spread.p95 / 3600:.1f} h) of {self.spread.samples} batches ({self.spread.scope})"
            )
        return (
            f"batch {b.id} ({b.model}, {b.requests:,} requests): expected by {self.p50_at:%Y-%m-%d %H:%M} UTC "
            f"(p50), {self.p95_at:%Y-%m-%d %H:%M} UTC (p95); from {self.spread.samples} batches "
            f"({self.spread.scope})"
        )


def expected_finishes(
    engine: Engine, now: datetime, *, run_id: int | None = None, model: DurationModel | None = None
) -> list[Expected]:
    """The expected finish (p50/p95) of every batch still in flight (of ``run_id``, when given)."""
    durations = model or DurationModel.load(engine)
    return [_expect(durations, b, now) for b in in_flight_batches(engine, run_id=run_id)]


def _expect(durations: DurationModel, batch: InFlightBatch, now: datetime) -> Expected:
    spread = durations.spread(batch.model, batch.requests, batch.submitted_at)
    if spread is None:
        return Expected(batch, None, None, None)
    p50 = max(now, batch.submitted_at + timedelta(seconds=spread.p50))
    p95_raw = batch.submitted_at + timedelta(seconds=spread.p95)
    return Expected(batch, p50, max(now, p95_raw), spread, overdue=p95_raw < now)


def describe_all(expected: Iterable[Expected]) -> list[str]:
    """One line per in-flight batch."""
    return [e.describe() for e in expected]


def forecast_lines(durations: DurationModel, groups: Iterable[tuple[str, int]], now: datetime) -> list[str]:
    """For (model, requests) groups about to be sent: how long their batch should take, p50 and p95."""
    lines = []
    for model, requests in groups:
        spread = durations.spread(model, requests, now)
        if spread is None:
            lines.append(f"a batch of {requests:,} on {model}: no finished batches measured yet")
            continue
        lines.append(
            f"a batch of {requests:,} on {model}: expected to take {spread.p50 / 3600:.1f} h (p50), "
            f"{spread.p95 / 3600:.1f} h (p95), from {spread.samples} batches ({spread.scope})"
        )
    return lines
