"""Which ``usage_record`` rows a report covers: one run, a range of UTC days, or everything.

One run means rows whose ``run_id`` is that run (the run that *submitted* the requests, whenever their results
were ingested), together with the interrupted runs just before it whose work it finished. A range of days
means rows *billed* on those days (``created_at``, the ingest time of a batch result).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement
from sqlmodel import col

from nightbatch.db.models import UsageRecord
from nightbatch.errors import InputError

__all__ = ["Selection", "midnight"]


def midnight(day: date) -> datetime:
    """The first instant of ``day`` in UTC."""
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True)
class Selection:
    """The ledger rows a report covers. Build one with :meth:`run`, :meth:`days` or :meth:`everything`."""

    run_id: int | None = None
    run_started_at: datetime | None = None
    since: date | None = None
    """First UTC day, inclusive (ranges only)."""
    until: date | None = None
    """Last UTC day, inclusive (ranges only)."""
    interrupted_runs: tuple[int, ...] = ()
    """Interrupted runs just before ``run_id`` whose work it finished (their rows keep their run ids)."""

    @classmethod
    def run(cls, run_id: int, started_at: datetime, interrupted_runs: Sequence[int] = ()) -> Selection:
        return cls(run_id=run_id, run_started_at=started_at, interrupted_runs=tuple(interrupted_runs))

    @classmethod
    def days(cls, since: date | None, until: date | None) -> Selection:
        if since is not None and until is not None and since > until:
            raise InputError(f"--since {since.isoformat()} is after --until {until.isoformat()}")
        return cls(since=since, until=until)

    @classmethod
    def everything(cls) -> Selection:
        return cls()

    @property
    def kind(self) -> str:
        """``run``, ``day``, ``range`` or ``all``."""
        if self.run_id is not None:
            return "run"
        if self.since is not None and self.since == self.until:
            return "day"
        return "range" if self.since is not None or self.until is not None else "all"

    @property
    def label(self) -> str:
        """A human name: ``run 12 (2026-11-20)``, ``2026-11-20``, ``2026-11-01..2026-11-20``, ``all usage``."""
        if self.run_id is not None:
            started = f" ({self.run_started_at:%Y-%m-%d %H:%M} UTC)" if self.run_started_at else ""
            if self.interrupted_runs:
                earlier = ", ".join(map(str, self.interrupted_runs))
                return f"run {self.run_id}{started} with interrupted run(s) {earlier}, whose work it finished"
            return f"run {self.run_id}{started}"
        if self.kind == "day":
            assert self.since is not None
            return self.since.isoformat()
        if self.kind == "range":
            first = self.since.isoformat() if self.since else "…"
            last = self.until.isoformat() if self.until else "…"
            return f"{first}..{last}"
        return "all usage"

    def usage_filter(self) -> list[ColumnElement[bool]]:
        """WHERE clauses on ``usage_record`` selecting the covered rows (for the queries of this package)."""
        if self.run_id is not None:
            if self.interrupted_runs:
                return [col(UsageRecord.run_id).in_([self.run_id, *self.interrupted_runs])]
            return [col(UsageRecord.run_id) == self.run_id]
        clauses: list[ColumnElement[bool]] = []
        if self.since is not None:
            clauses.append(col(UsageRecord.created_at) >= midnight(self.since))
        if self.until is not None:
            clauses.append(col(UsageRecord.created_at) < midnight(self.until + timedelta(days=1)))
        return clauses

    def runs_end(self) -> datetime | None:
        """Runs started before this instant are at or before the selection (None: every run is)."""
        if self.run_started_at is not None:
            return self.run_started_at + timedelta(microseconds=1)
        return midnight(self.until + timedelta(days=1)) if self.until is not None else None

    def precedes(self, run_id: int, started_at: datetime) -> bool:
        """True for a run before the selection: the history a rolling window is taken from."""
        if self.run_id is not None:
            assert self.run_started_at is not None
            if run_id in self.interrupted_runs:
                return False
            return (started_at, run_id) < (self.run_started_at, self.run_id)
        return self.since is not None and started_at < midnight(self.since)
