"""Reading the ledger: which rows a report covers, and the few aggregate queries every report is built from.

A :class:`Selection` names the ``usage_record`` rows a report covers: one run (rows whose ``run_id`` is
that run: the run that *submitted* the requests, whenever their results were ingested), a range of UTC
days (rows *billed* on those days: ``created_at``, the ingest time of a batch result), or everything.

Each query returns small frozen dataclasses (no ORM objects) and groups in the database, so a report
over a night of 100,000 tasks moves a few hundred rows, except :func:`billed_tasks` (one row per billed
task response), which the pass-rate attribution needs task by task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, case, exists, func, literal_column, select
from sqlmodel import col

from nightbatch.db.models import Batch, Run, Task, UsagePurpose, UsageRecord
from nightbatch.errors import InputError, StateError
from nightbatch.pricing import PriceTable, Usage, load_price_table
from nightbatch.runs import interrupted_before

__all__ = [
    "BatchCache",
    "BilledTask",
    "DayModelCost",
    "LedgerGroup",
    "RunCache",
    "Selection",
    "batch_cache",
    "billed_tasks",
    "daily_model_costs",
    "ledger_groups",
    "long_prompt_thresholds",
    "price_versions",
    "resolve_selection",
    "run_cache_history",
]

RUNS_SCANNED = 60
"""How many runs up to the selection :func:`run_cache_history` reads (the rolling window and the chart)."""


def _midnight(day: date) -> datetime:
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
        """WHERE clauses on ``usage_record`` selecting the covered rows."""
        if self.run_id is not None:
            if self.interrupted_runs:
                return [col(UsageRecord.run_id).in_([self.run_id, *self.interrupted_runs])]
            return [col(UsageRecord.run_id) == self.run_id]
        clauses: list[ColumnElement[bool]] = []
        if self.since is not None:
            clauses.append(col(UsageRecord.created_at) >= _midnight(self.since))
        if self.until is not None:
            clauses.append(col(UsageRecord.created_at) < _midnight(self.until + timedelta(days=1)))
        return clauses

    def _runs_end(self) -> datetime | None:
        """Runs started before this instant are at or before the selection."""
        if self.run_started_at is not None:
            return self.run_started_at + timedelta(microseconds=1)
        return _midnight(self.until + timedelta(days=1)) if self.until is not None else None

    def precedes(self, run_id: int, started_at: datetime) -> bool:
        """True for a run before the selection: the history a rolling window is taken from."""
        if self.run_id is not None:
            assert self.run_started_at is not None
            if run_id in self.interrupted_runs:
                return False
            return (started_at, run_id) < (self.run_started_at, self.run_id)
        return self.since is not None and started_at < _midnight(self.since)


def resolve_selection(
    engine: Engine,
    *,
    run_id: int | None = None,
    day: date | None = None,
    since: date | None = None,
    until: date | None = None,
) -> Selection:
    """The selection the CLI's options name; without any, the latest run that billed anything.

    A run's selection includes the interrupted runs just before it (:func:`nightbatch.runs.interrupted_before`):
    it finished their work, and its label says so.

    Raises :class:`InputError` for contradictory options or an unknown run, and :class:`StateError` when
    there is no run at all to default to.
    """
    given = [name for name, value in (("--run", run_id), ("--day", day)) if value is not None]
    if since is not None or until is not None:
        given.append("--since/--until")
    if len(given) > 1:
        raise InputError(f"choose one of --run, --day or --since/--until, not {' and '.join(given)}")
    if day is not None:
        return Selection.days(day, day)
    if since is not None or until is not None:
        return Selection.days(since, until)
    with engine.connect() as conn:
        if run_id is not None:
            started = conn.execute(select(col(Run.started_at)).where(col(Run.id) == run_id)).scalar_one_or_none()
            if started is None:
                raise InputError(f"run {run_id} does not exist; `nightbatch report` without --run picks the latest")
            return Selection.run(run_id, started, interrupted_before(engine, run_id))
        billed = exists().where(col(UsageRecord.run_id) == col(Run.id))
        latest = select(col(Run.id), col(Run.started_at)).order_by(col(Run.started_at).desc(), col(Run.id).desc())
        row = conn.execute(latest.where(billed).limit(1)).first() or conn.execute(latest.limit(1)).first()
    if row is None:
        raise StateError(
            "the database has no runs yet: run `nightbatch run` (or `make run`) first, or choose a period with "
            "--day / --since"
        )
    return Selection.run(int(row[0]), row[1], interrupted_before(engine, int(row[0])))


# -- rows ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerGroup:
    """Usage rows summed per (task type, model, purpose, service tier, UTC day billed, geo, prompt band).

    ``task_type`` is None for rows that serve no task (priming, calibration probes). ``day`` is the day the
    rows were billed (``billed_at``, else ``created_at``): the day whose price rows re-price them.
    ``unpriced`` of the ``responses`` have no cost (NULL: their model had no price row); ``cost_pusd`` is
    the sum of the others. ``long_prompt`` is the largest long-prompt threshold of the price table that
    every row's prompt exceeds (0: none), so a sum of rows can be re-priced with each row's own band.
    """

    task_type: str | None
    model: str
    purpose: str
    service_tier: str
    day: date
    responses: int
    usage: Usage
    cost_pusd: int
    unpriced: int = 0
    inference_geo: str | None = None
    long_prompt: int = 0


@dataclass(frozen=True)
class BilledTask:
    """One task's billed response(s) on one model in the selection, and how the task ended.

    ``latest`` is True when the task's newest billed response (over the whole ledger) is on this model
    in this selection: the task's status is the verdict on that response.
    """

    task_id: int
    task_type: str
    model: str
    latest: bool
    status: str
    error_type: str | None


@dataclass(frozen=True)
class RunCache:
    """Cache tokens of one task type's task responses in one run."""

    run_id: int
    started_at: datetime
    task_type: str
    cache_read_tokens: int
    cache_write_tokens: int


@dataclass(frozen=True)
class BatchCache:
    """Cache tokens and cost of one batch's billed responses in the selection."""

    batch_id: int
    provider_batch_id: str | None
    model: str
    task_type: str | None
    cache_ttl: str | None
    responses: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_pusd: int


@dataclass(frozen=True, order=True)
class DayModelCost:
    """What one model cost on one UTC day (all purposes)."""

    day: date
    model: str
    cost_pusd: int


# -- queries ---------------------------------------------------------------------------------------


def _day(engine: Engine) -> ColumnElement[Any]:
    """``usage_record.created_at`` as a ``YYYY-MM-DD`` UTC day string, in SQL.

    Literal (not bound) format arguments: PostgreSQL only matches a GROUP BY expression to the selected
    one when the two are textually identical, and two bound parameters are not.
    """
    column = col(UsageRecord.created_at)
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column("'YYYY-MM-DD'"))
    return func.strftime(literal_column("'%Y-%m-%d'"), column)  # SQLite stores UTC without an offset


def _int(value: Any) -> int:
    return int(value or 0)  # SUM over BIGINT is NUMERIC (a Decimal) on PostgreSQL, NULL over no rows


_TOKEN_SUMS = (
    func.sum(col(UsageRecord.input_tokens)),
    func.sum(col(UsageRecord.output_tokens)),
    func.sum(col(UsageRecord.cache_write_5m_tokens)),
    func.sum(col(UsageRecord.cache_write_1h_tokens)),
    func.sum(col(UsageRecord.cache_read_tokens)),
)


def _usage(sums: Sequence[Any]) -> Usage:
    inp, out, w5, w1, read = (_int(v) for v in sums)
    return Usage(
        input_tokens=inp, output_tokens=out, cache_write_5m_tokens=w5, cache_write_1h_tokens=w1, cache_read_tokens=read
    )


def _billed_day(engine: Engine) -> ColumnElement[Any]:
    """The UTC day a row was billed (``billed_at``; rows from before it was recorded: ``created_at``)."""
    column = func.coalesce(col(UsageRecord.billed_at), col(UsageRecord.created_at))
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column("'YYYY-MM-DD'"))
    return func.strftime(literal_column("'%Y-%m-%d'"), column)


def _band(thresholds: Sequence[int]) -> ColumnElement[Any]:
    """The largest of ``thresholds`` the row's prompt (input + writes + reads) exceeds, 0 for none, in SQL.

    Literal thresholds, for the same reason as :func:`_day` (GROUP BY matching on PostgreSQL).
    """
    prompt = (
        col(UsageRecord.input_tokens)
        + col(UsageRecord.cache_write_5m_tokens)
        + col(UsageRecord.cache_write_1h_tokens)
        + col(UsageRecord.cache_read_tokens)
    )
    whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = [
        (prompt > literal_column(str(int(t))), literal_column(str(int(t)))) for t in sorted(thresholds, reverse=True)
    ]
    return case(*whens, else_=literal_column("0")) if whens else literal_column("0")


def long_prompt_thresholds(prices: PriceTable) -> list[int]:
    """Every long-prompt threshold of ``prices`` (the band keys :func:`ledger_groups` groups by)."""
    found = {row.long_prompt_above for rows in prices.rows.values() for row in rows}
    return sorted(t for t in found if t is not None)


def ledger_groups(engine: Engine, selection: Selection, prices: PriceTable | None = None) -> list[LedgerGroup]:
    """Every usage row of the selection, summed per (task type, model, purpose, tier, day, geo, band).

    ``prices`` supplies the long-prompt thresholds (default: the packaged table's).
    """
    day = _billed_day(engine)
    band = _band(long_prompt_thresholds(prices or load_price_table()))
    keys = (col(Task.task_type), col(UsageRecord.model), col(UsageRecord.purpose), col(UsageRecord.service_tier), day,
            col(UsageRecord.inference_geo), band)  # fmt: skip
    stmt = (
        select(
            *keys,
            func.count(),
            *_TOKEN_SUMS,
            func.sum(col(UsageRecord.cost_pusd)),
            func.count(col(UsageRecord.cost_pusd)),
        )
        .select_from(UsageRecord)
        .outerjoin(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(*selection.usage_filter())
        .group_by(*keys)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        LedgerGroup(
            task_type=task_type,
            model=model,
            purpose=str(purpose),
            service_tier=str(tier),
            day=date.fromisoformat(day_text),
            responses=int(count),
            usage=_usage(row[8:13]),
            cost_pusd=_int(row[13]),
            unpriced=int(count) - _int(row[14]),
            inference_geo=geo,
            long_prompt=_int(band_key),
        )
        for row in rows
        for task_type, model, purpose, tier, day_text, geo, band_key, count in [row[:8]]
    ]


def billed_tasks(engine: Engine, selection: Selection) -> list[BilledTask]:
    """One row per (task, model, newest-or-not) among the selection's task responses."""
    task_id = col(UsageRecord.task_id)
    is_task = col(UsageRecord.purpose == UsagePurpose.TASK) if False else col(UsageRecord.purpose) == UsagePurpose.TASK
    in_selection = select(task_id).where(is_task, *selection.usage_filter())
    newest = (
        select(task_id.label("task_id"), func.max(col(UsageRecord.id)).label("newest_id"))
        .where(is_task, task_id.in_(in_selection))
        .group_by(task_id)
        .subquery()
    )
    stmt = (
        select(
            task_id,
            col(Task.task_type),
            col(UsageRecord.model),
            (col(UsageRecord.id) == newest.c.newest_id).label("latest"),
            col(Task.status),
            col(Task.error_type),
        )
        .join(Task, col(Task.id) == task_id)
        .join(newest, newest.c.task_id == task_id)
        .where(is_task, *selection.usage_filter())
        .distinct()
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        BilledTask(int(tid), task_type, model, bool(latest), str(status), error_type)
        for tid, task_type, model, latest, status, error_type in rows
    ]


def run_cache_history(engine: Engine, selection: Selection, *, runs: int = RUNS_SCANNED) -> list[RunCache]:
    """Cache tokens per (run, task type) of task responses, for the latest ``runs`` runs up to the selection.

    Runs that billed nothing are skipped. Rows come oldest run first.
    """
    billed = exists().where(col(UsageRecord.run_id) == col(Run.id))
    recent = select(col(Run.id)).where(billed)
    end = selection._runs_end()
    if end is not None:
        recent = recent.where(col(Run.started_at) < end)
    recent = recent.order_by(col(Run.started_at).desc(), col(Run.id).desc()).limit(runs)
    keys = (col(UsageRecord.run_id), col(Run.started_at), col(Task.task_type))
    stmt = (
        select(
            *keys,
            func.sum(col(UsageRecord.cache_read_tokens)),
            func.sum(col(UsageRecord.cache_write_5m_tokens) + col(UsageRecord.cache_write_1h_tokens)),
        )
        .join(Run, col(Run.id) == col(UsageRecord.run_id))
        .join(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(col(UsageRecord.purpose) == UsagePurpose.TASK, col(UsageRecord.run_id).in_(recent))
        .group_by(*keys)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    found = [RunCache(int(r[0]), r[1], r[2], _int(r[3]), _int(r[4])) for r in rows]
    return sorted(found, key=lambda r: (r.started_at, r.run_id, r.task_type))


def batch_cache(engine: Engine, selection: Selection) -> list[BatchCache]:
    """Cache tokens and cost per batch among the selection's usage rows, by batch id."""
    keys = (col(UsageRecord.batch_id), col(Batch.provider_batch_id), col(Batch.model), col(Batch.cache_ttl))
    stmt = (
        select(
            *keys,
            func.min(col(Task.task_type)),
            func.count(),
            func.sum(col(UsageRecord.cache_read_tokens)),
            func.sum(col(UsageRecord.cache_write_5m_tokens) + col(UsageRecord.cache_write_1h_tokens)),
            func.sum(col(UsageRecord.cost_pusd)),
        )
        .join(Batch, col(Batch.id) == col(UsageRecord.batch_id))
        .outerjoin(Task, col(Task.id) == col(UsageRecord.task_id))
        .where(*selection.usage_filter())
        .group_by(*keys)
        .order_by(col(UsageRecord.batch_id))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [BatchCache(int(r[0]), r[1], r[2], r[4], r[3], int(r[5]), _int(r[6]), _int(r[7]), _int(r[8])) for r in rows]


def daily_model_costs(engine: Engine, first: date, last: date) -> list[DayModelCost]:
    """Cost per (UTC day, model) of every usage row billed from ``first`` to ``last`` inclusive."""
    day = _day(engine)
    stmt = (
        select(day, col(UsageRecord.model), func.sum(col(UsageRecord.cost_pusd)))
        .where(
            col(UsageRecord.created_at) >= _midnight(first),
            col(UsageRecord.created_at) < _midnight(last + timedelta(days=1)),
        )
        .group_by(day, col(UsageRecord.model))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return sorted(DayModelCost(date.fromisoformat(d), model, _int(cost)) for d, model, cost in rows)


def price_versions(engine: Engine, selection: Selection) -> list[str]:
    """The price-table versions the selection's recorded costs were computed with."""
    stmt = select(col(UsageRecord.price_version)).where(*selection.usage_filter()).distinct()
    with engine.connect() as conn:
        return sorted(str(v) for v in conn.execute(stmt).scalars())
