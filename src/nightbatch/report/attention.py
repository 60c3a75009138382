"""What in a run needs a person's attention: failed tasks, expired batches, budget stops, drift, recoveries,
billed responses that could not be priced, and fan-out batches whose cache reads fell well below their plan."""

from __future__ import annotations

from nightbatch.db import Engine, UsagePurpose
from nightbatch.db.queries.batches import batch_notes
from nightbatch.db.queries.costs import unpriced_by_model
from nightbatch.db.run_tasks import run_failures
from nightbatch.report.prefix import below_plan
from nightbatch.report.quality import measured_drift
from nightbatch.report.query import Selection, batch_cache, batch_plans
from nightbatch.runs import interrupted_before
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["attention_items"]


def attention_items(
    engine: Engine,
    registry: TaskTypeRegistry,
    run_id: int,
    *,
    notes: list[str] | None = None,
    failed_before_sending: dict[str, int] | None = None,
) -> list[str]:
    """One line per thing to look at in run ``run_id`` (plus the run's own ``notes``, e.g. a budget stop).

    Covers the interrupted runs just before it too: it finished their work (:mod:`nightbatch.runs`).
    ``failed_before_sending``: tasks whose request could not be built (no batch links them to the run, so
    the flow passes their count by error type).
    """
    items = list(notes or [])
    for error_type, count in sorted((failed_before_sending or {}).items()):
        items.append(f"{count:,} task(s) failed before sending ({error_type}): fix the task data or template")
    runs = [run_id, *interrupted_before(engine, run_id)]
    failed: dict[str, int] = {}
    for run in runs:
        for error_type, count in run_failures(engine, run).items():
            failed[error_type] = failed.get(error_type, 0) + count
    batches = batch_notes(engine, runs)
    for model, count in unpriced_by_model(engine, runs).items():
        items.append(
            f"UNPRICED: {count} billed response(s) on {model} have no price row: their cost is not in the totals "
            "(add the model to the price table)"
        )
    for error_type, count in sorted(failed.items()):
        items.append(f"{count:,} task(s) failed ({error_type})")
    for batch in batches:
        provider_id = batch.provider_batch_id
        if batch.expired_count:
            items.append(f"batch {provider_id}: {batch.expired_count} request(s) expired before processing (re-queued)")
        if batch.error:
            items.append(f"batch {provider_id}: {batch.error}")
        if batch.purpose == UsagePurpose.ORPHAN:
            items.append(f"batch {provider_id} was created without a record (an orphan); its cost is in the ledger")
    # Fan-out batches of the run whose reads fell well below their plan (named, with both figures).
    run_batches = [b for r in runs for b in batch_cache(engine, Selection(run_id=r))]
    items += below_plan(run_batches, batch_plans(engine, [b.batch_id for b in run_batches]))
    for drift in measured_drift(engine, registry):
        if drift.drifted:
            items.append(
                f"{drift.task_type} on {drift.routed_model}: agreement with {drift.shadow_model} "
                f"{drift.agreement:.0%}, pass rate {drift.routed_pass_rate:.0%} over {drift.pairs} shadowed tasks, "
                f"below the bar of {drift.threshold:.0%}: recalibrate"
            )
    return items
