"""The hard budget: a cent under the cap submits, a cent over keeps the task queued, and the run says so."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from sqlalchemy import func, insert, select

from nightbatch.build.cache_ttl import plan_group
from nightbatch.build.requests import RequestBuilder
from nightbatch.db.models import Task, UsageRecord, utcnow
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue
from nightbatch.services import Services
from nightbatch.submit.budget import Budget, request_bound_usd
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import TaskType, TaskTypeRegistry

TEXTS = [f"Write the story of order {n}." for n in range(1, 11)]


def statuses(services: Services) -> Counter[str]:
    with services.engine.connect() as conn:
        return Counter({str(s): n for s, n in conn.execute(select(Task.status, func.count()).group_by(Task.status))})


ESSAY = TaskType(name="essay", model="claude-opus-4-8", max_tokens=4000, template="{text}")  # ~5 cents each


def use_essays(services: Services) -> None:
    services.registry = TaskTypeRegistry([ESSAY])


def bounds(services: Services) -> list[Decimal]:
    """The forecast of each of the ten requests, computed as the submitter will (no prefix to share)."""
    task_type = ESSAY
    builder = RequestBuilder()
    requests = [builder.build(i + 1, 1, task_type, task_type.model, {"text": t}) for i, t in enumerate(TEXTS)]
    decision = plan_group(model=task_type.model, prices=services.prices, prefix_tokens=0, requests=len(requests))
    return [request_bound_usd(services.prices, r, decision) for r in requests]


def enqueue_essays(services: Services) -> None:
    use_essays(services)
    for text in TEXTS:
        enqueue(services.engine, "essay", {"text": text})


def test_a_cent_over_the_run_budget_keeps_the_last_task_queued(local_services: Services, emulator: EmulatorServer):
    services = local_services
    enqueue_essays(services)
    each = bounds(services)
    assert all(cost > Decimal("0.02") for cost in each)
    cap = sum(each) - Decimal("0.01")  # a cent short of the tenth request
    report = submit_step(services, budget_usd=cap)
    assert report.submitted_tasks == 9
    assert report.budget_stopped is not None
    assert "run budget" in report.budget_stopped
    assert statuses(services) == {"submitted": 9, "queued": 1}
    with services.engine.connect() as conn:
        assert conn.execute(select(func.max(Task.attempts)).where(Task.status == "queued")).scalar_one() == 0


def test_a_cent_under_the_budget_everything_goes(local_services: Services, emulator: EmulatorServer):
    services = local_services
    enqueue_essays(services)
    report = submit_step(services, budget_usd=sum(bounds(services)) + Decimal("0.01"))
    assert report.submitted_tasks == 10
    assert report.budget_stopped is None
    assert report.forecast_usd == sum(bounds(services))


def test_the_days_actual_spend_counts_against_the_daily_budget(local_services: Services, emulator: EmulatorServer):
    services = local_services
    enqueue_essays(services)
    with services.engine.begin() as conn:  # $1 already spent today, per the ledger
        conn.execute(insert(UsageRecord).values(model="claude-haiku-4-5", service_tier="batch", price_version="x",
                                                cost_pusd=10**12, purpose="task", created_at=utcnow()))  # fmt: skip
    services.settings = services.settings.model_copy(update={"budget_per_day_usd": Decimal("1.00")})
    report = submit_step(services)
    assert report.submitted_tasks == 0
    assert report.budget_stopped is not None
    assert "daily budget" in report.budget_stopped
    assert statuses(services) == {"queued": 10}


def test_budget_admits_in_order_and_remembers():
    budget = Budget(per_run_usd=Decimal("1.00"))
    assert budget.admit(Decimal("0.60"))
    assert not budget.admit(Decimal("0.41"))
    assert budget.admit(Decimal("0.40"))
    assert budget.committed_usd == Decimal("1.00")
