"""The deadline step as a Prefect task (wiring only): cancel what would be late, settle due tasks by policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import names
from nightbatch.deadline.policy import DeadlineReport, deadline_step
from nightbatch.services import Services


def run_margin(services: Services, deadline_minutes: float) -> timedelta:
    """The configured margin, at most a quarter of the run's window (a 2-minute run keeps 30 s, not 30 min)."""
    return timedelta(minutes=min(services.settings.deadline_margin_minutes, deadline_minutes / 4))


@task(name="enforce-deadline", task_run_name=names.for_run("deadline-check"), cache_policy=NO_CACHE)
def enforce_deadline(
    services: Services,
    run_id: int,
    run_deadline: datetime,
    margin: timedelta,
    task_types: list[str] | None,
    budget_usd: Decimal | None,
) -> DeadlineReport:
    # No Prefect retries: real-time calls are billed; the step itself is safe to run again next poll.
    report = deadline_step(
        services, now=datetime.now(UTC), run_id=run_id, run_deadline=run_deadline, task_types=task_types,
        margin=margin, budget_usd=budget_usd,
    )  # fmt: skip
    logger = get_run_logger()
    for line in report.notes():
        logger.warning(line)
    return report
