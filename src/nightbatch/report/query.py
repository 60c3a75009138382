"""Which ledger rows a report covers, and the reads every report is built from.

A :class:`Selection` names the ``usage_record`` rows a report covers: one run (rows whose ``run_id`` is
that run: the run that *submitted* the requests, whenever their results were ingested), a range of UTC
days (rows *billed* on those days: ``created_at``, the ingest time of a batch result), or everything.

The queries live in the database port (:mod:`nightbatch.db.queries`) and return small frozen rows; they
group in the database, so a report over a night of 100,000 tasks moves a few hundred rows, except
:func:`billed_tasks` (one row per billed task response), which the pass-rate attribution needs task by
task. This module resolves the CLI's options into a selection and re-exports the rows and reads the
report modules use.
"""

from __future__ import annotations

from datetime import date

from nightbatch.db import Engine
from nightbatch.db.queries import costs
from nightbatch.db.queries.cache import (
    RUNS_SCANNED,
    BatchCache,
    BatchPlan,
    RunCache,
    batch_cache,
    batch_plans,
    run_cache_history,
)
from nightbatch.db.queries.costs import DayModelCost, LedgerGroup, daily_model_costs, price_versions
from nightbatch.db.queries.runs import latest_run, run_started_at
from nightbatch.db.queries.selection import Selection
from nightbatch.db.queries.tasks import BilledTask, billed_tasks
from nightbatch.errors import InputError, StateError
from nightbatch.pricing import PriceTable, load_price_table
from nightbatch.runs import interrupted_before

__all__ = [
    "RUNS_SCANNED",
    "BatchCache",
    "BatchPlan",
    "BilledTask",
    "DayModelCost",
    "LedgerGroup",
    "RunCache",
    "Selection",
    "batch_cache",
    "batch_plans",
    "billed_tasks",
    "daily_model_costs",
    "ledger_groups",
    "long_prompt_thresholds",
    "price_versions",
    "resolve_selection",
    "run_cache_history",
]


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
    if run_id is not None:
        started = run_started_at(engine, run_id)
        if started is None:
            raise InputError(f"run {run_id} does not exist; `nightbatch report` without --run picks the latest")
        return Selection.run(run_id, started, interrupted_before(engine, run_id))
    latest = latest_run(engine)
    if latest is None:
        raise StateError(
            "the database has no runs yet: run `nightbatch run` (or `make run`) first, or choose a period with "
            "--day / --since"
        )
    return Selection.run(latest.run_id, latest.started_at, interrupted_before(engine, latest.run_id))


def long_prompt_thresholds(prices: PriceTable) -> list[int]:
    """Every long-prompt threshold of ``prices`` (the band keys :func:`ledger_groups` groups by)."""
    found = {row.long_prompt_above for rows in prices.rows.values() for row in rows}
    return sorted(t for t in found if t is not None)


def ledger_groups(engine: Engine, selection: Selection, prices: PriceTable | None = None) -> list[LedgerGroup]:
    """Every usage row of the selection, summed per (task type, model, purpose, tier, day, geo, band).

    ``prices`` supplies the long-prompt thresholds (default: the packaged table's).
    """
    return costs.ledger_groups(engine, selection, long_prompt_thresholds(prices or load_price_table()))
