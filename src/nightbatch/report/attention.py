"""What in a run needs a person's attention: failed tasks, expired batches, budget stops, drift, recoveries,
billed responses that could not be priced, and fan-out batches whose cache reads fell well below their plan."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlmodel import col

from nightbatch.db.models import Batch, Task, TaskStatus, UsageRecord
from nightbatch.quality.measure import shadow_drift
from nightbatch.report.prefix import below_plan
from nightbatch.report.query import Selection, batch_cache, batch_plans
from nightbatch.runs import interrupted_before
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["attention_items"]


def attention_items(
    engine: Engine, registry: TaskTypeRegistry, run_id: int, *, notes: list[str] | None = None
) -> list[str]:
    """One line per thing to look at in run ``run_id`` (plus the run's own ``notes``, e.g. a budget stop).

    Covers the interrupted runs just before it too: it finished their work (:mod:`nightbatch.runs`).
    """
    items = list(notes or [])
    runs = [run_id, *interrupted_before(engine, run_id)]
    with engine.connect() as conn:
        failed = conn.execute(
            select(col(Task.error_type), func.count())
            .join(Batch, col(Batch.id) == col(Task.batch_id))
            .where(col(Batch.run_id).in_(runs), col(Task.status) == TaskStatus.FAILED)
            .group_by(col(Task.error_type))
        ).all()
        batches = conn.execute(
            select(col(Batch.provider_batch_id), col(Batch.expired_count), col(Batch.error), col(Batch.purpose)).where(
                col(Batch.run_id).in_(runs)
            )
        ).all()
        unpriced = conn.execute(
            select(col(UsageRecord.model), func.count())
            .where(col(UsageRecord.run_id).in_(runs), col(UsageRecord.cost_pusd).is_(None))
            .group_by(col(UsageRecord.model))
        ).all()
    for model, count in unpriced:
        items.append(
            f"UNPRICED: {count} billed response(s) on {model} have no price row: their cost is not in the totals "
            "(add the model to the price table)"
        )
    for error_type, count in failed:
        items.append(f"{count} task(s) failed ({error_type or 'unknown error'})")
    for provider_id, expired, error, purpose in batches:
        if expired:
            items.append(f"batch {provider_id}: {expired} request(s) expired before processing (re-queued)")
        if error:
            items.append(f"batch {provider_id}: {error}")
        if purpose == "orphan":
            items.append(f"batch {provider_id} was created without a record (an orphan); its cost is in the ledger")
    # Fan-out batches of the run whose reads fell well below their plan (named, with both figures).
    run_batches = [b for r in runs for b in batch_cache(engine, Selection(run_id=r))]
    items += below_plan(run_batches, batch_plans(engine, [b.batch_id for b in run_batches]))
    for drift in shadow_drift(engine, registry):
        if drift.drifted:
            items.append(
                f"{drift.task_type} on {drift.routed_model}: agreement with {drift.shadow_model} "
                f"{drift.agreement:.0%}, pass rate {drift.routed_pass_rate:.0%} over {drift.pairs} shadowed tasks, "
                f"below the bar of {drift.threshold:.0%}: recalibrate"
            )
    return items
