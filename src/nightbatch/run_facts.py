"""Gathering a run's facts for the outcome policy: what the flow saw plus what the database holds.

The flow keeps a :class:`RunLog` while it runs (budget stop, deadline, refused files, tasks that failed
before sending — things no table records per run), then :func:`judge_run` adds the outcome counts and
cost from the database and applies :func:`nightbatch.outcome_policy.decide_outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nightbatch.db import Engine
from nightbatch.db.run_tasks import run_open_batches, run_task_counts
from nightbatch.outcome_policy import DEFAULT_MAX_FAILED_SHARE, RunFacts, RunOutcome, decide_outcome
from nightbatch.pricing import PriceTable
from nightbatch.report.summary import RunSummary, summarize
from nightbatch.tasktypes import TaskTypeRegistry

__all__ = ["JudgedRun", "RunLog", "judge_run"]


@dataclass
class RunLog:
    """What a flow saw while it ran, accumulated over its rounds."""

    failed_before_sending: dict[str, int] = field(default_factory=dict)
    budget_stopped: str | None = None
    deadline_passed: bool = False
    refused_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    forecast_usd: Decimal = Decimal(0)
    submitted_tasks: int = 0
    batches: int = 0

    @classmethod
    def from_totals(cls, totals: dict[str, Any]) -> RunLog:
        """The log a finished flow saved in its run's totals (to judge the run again once collect is done)."""
        return cls(
            failed_before_sending=dict(totals.get("failed_before_sending") or {}),
            budget_stopped=totals.get("budget_stopped"),
            deadline_passed=bool(totals.get("deadline_passed")),
            refused_files=list(totals.get("refused_files") or []),
            notes=list(totals.get("notes") or []),
            forecast_usd=Decimal(str(totals.get("forecast_usd") or 0)),
            submitted_tasks=int(totals.get("submitted") or 0),
            batches=int(totals.get("batches") or 0),
        )

    def add_failures(self, by_error: dict[str, int]) -> None:
        for error, count in by_error.items():
            self.failed_before_sending[error] = self.failed_before_sending.get(error, 0) + count


@dataclass(frozen=True)
class JudgedRun:
    """A run's facts, its summary (cost, cache, savings) and the policy's verdict."""

    run_id: int
    facts: RunFacts
    summary: RunSummary
    outcome: RunOutcome

    def totals(self, log: RunLog) -> dict[str, Any]:
        """JSON-safe totals for the ``run`` row and the flow's return value."""
        return {
            "outcome": {"ok": self.outcome.ok, "reasons": list(self.outcome.reasons), "message": self.outcome.message},
            "outcomes": self.facts.outcomes,
            "failed_before_sending": self.facts.failed_before_sending,
            "open_batches": self.facts.open_batches,
            "submitted": log.submitted_tasks,
            "batches": log.batches,
            "cost_usd": str(self.summary.cost_usd),
            "baseline_usd": str(self.summary.baseline_usd),
            "prefix_hit_rate": self.summary.prefix_hit_rate,  # read ÷ all prefix tokens: the headline
            "cache_hit_rate": self.summary.cache_hit_rate,  # read ÷ (read + write), the second figure
            "forecast_usd": str(log.forecast_usd),
            "budget_stopped": log.budget_stopped,
            "deadline_passed": log.deadline_passed,
            "refused_files": log.refused_files,
            "notes": log.notes,
        }


def judge_run(
    engine: Engine,
    prices: PriceTable,
    run_id: int,
    log: RunLog,
    *,
    max_failed_share: Decimal = DEFAULT_MAX_FAILED_SHARE,
    registry: TaskTypeRegistry | None = None,
) -> JudgedRun:
    """``registry`` names the naive baseline (the top of the config's ladders), as every report does."""
    summary = summarize(engine, prices, run_id=run_id, registry=registry)
    facts = RunFacts(
        outcomes=run_task_counts(engine, run_id),
        failed_before_sending=dict(log.failed_before_sending),
        budget_stopped=log.budget_stopped,
        deadline_passed=log.deadline_passed,
        refused_files=tuple(log.refused_files),
        open_batches=run_open_batches(engine, run_id),
        cost_usd=summary.cost_usd,
        baseline_usd=summary.baseline_usd or None,
    )
    return JudgedRun(run_id, facts, summary, decide_outcome(facts, max_failed_share=max_failed_share))
