"""Task types for the quality tests: a verdict task whose degraded answers fail its checks."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlmodel import Session, col

from nightbatch.collect.poll import collect_step
from nightbatch.db.models import Task, TaskAttempt
from nightbatch.emulator import EmulatorServer
from nightbatch.queue.enqueue import enqueue
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import RoutingPolicy, TaskType, TaskTypeRegistry

LADDER = ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-8")
LABELS = ("billing", "bug", "account")

VERDICT = TaskType(
    name="verdict",
    model=LADDER[0],
    max_tokens=60,
    system='Decide the case.\nVerdict: approve|reject|escalate\nAnswer in JSON {"verdict": ..., "reason": ...}.',
    template="Case: {text}",
    output="json",
    output_schema={
        "type": "object",
        "required": ["verdict"],
        "properties": {"verdict": {"enum": ["approve", "reject", "escalate"]}},
    },
    escalation=LADDER,
    routing=RoutingPolicy(threshold=0.9),
)
TRIAGE = TaskType.model_validate(
    {
        "name": "triage",
        "model": LADDER[0],
        "max_tokens": 8,
        "system": "Classify the ticket.\nLabels: " + ", ".join(LABELS),
        "template": "{text}",
        "escalation": LADDER,
        "checks": {"labels": LABELS, "reference_field": "expected"},
        "routing": {"threshold": 0.9, "shadow_fraction": 0.25},
    }
)


def use_types(services: Services) -> None:
    services.registry = TaskTypeRegistry([VERDICT, TRIAGE])


def enqueue_verdicts(services: Services, n: int) -> list[int]:
    words = ("approve", "reject", "escalate")
    return [enqueue(services.engine, "verdict", {"text": f"case {i}: please {words[i % 3]}"}).task_id for i in range(n)]


def enqueue_tickets(services: Services, n: int) -> list[int]:
    return [
        enqueue(
            services.engine, "triage", {"text": f"ticket {i} about {LABELS[i % 3]}", "expected": LABELS[i % 3]}
        ).task_id
        for i in range(n)
    ]


def run_until_done(services: Services, emulator: EmulatorServer, rounds: int = 5) -> None:
    for _ in range(rounds):
        submit_step(services)
        emulator.advance(3600)
        collect_step(services)


def statuses(services: Services) -> Counter[str]:
    with services.engine.connect() as conn:
        return Counter({str(s): n for s, n in conn.execute(select(Task.status, func.count()).group_by(Task.status))})


def attempts_by_task(services: Services, purpose: str = "task") -> dict[int, list[TaskAttempt]]:
    with Session(services.engine) as session:
        rows = [a for (a,) in session.exec(select(TaskAttempt).where(col(TaskAttempt.purpose) == purpose))]  # type: ignore[call-overload]
    grouped: dict[int, list[TaskAttempt]] = {}
    for row in sorted(rows, key=lambda a: a.id or 0):
        grouped.setdefault(row.task_id, []).append(row)
    return grouped
