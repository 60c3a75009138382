"""The run outcome policy: was a night (or a backfill, or a CLI command) a success or a problem?

One pure function, :func:`decide_outcome`, so that the Prefect flow state, the CLI exit code and the
"needs attention" list can never disagree. A run is a **problem** (Prefect state Failed, exit code 1) when

- a budget cap stopped submitting (work the night was meant to do stayed queued),
- the deadline passed with batches still open,
- a source file was refused (nothing of it was enqueued), or
- permanently failed tasks are more than ``max_failed_share`` of the run's tasks (default 0.5 %).
  Tasks that failed *before sending* (a bad template field, a request too large) count here too.

Otherwise it is **ok** (Completed, exit code 0) — with the failures below the threshold still named in
the message and in "needs attention". The message sums the night up in one line, outcome counts first.
See docs/operations.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from nightbatch.dollars import dollars_text

__all__ = ["DEFAULT_MAX_FAILED_SHARE", "EXIT_OK", "EXIT_PROBLEMS", "EXIT_USAGE", "RunFacts", "RunOutcome",
           "decide_outcome"]  # fmt: skip

DEFAULT_MAX_FAILED_SHARE = Decimal("0.005")
"""Permanently failed tasks above this share of a run make it a problem."""

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class RunFacts:
    """What happened in one run, as counted by the flow (no Prefect, no database here)."""

    outcomes: dict[str, int] = field(default_factory=dict)
    """Tasks the run sent, by current status (succeeded, failed, queued again, ...)."""
    failed_before_sending: dict[str, int] = field(default_factory=dict)
    """Tasks that failed while their request was built, by error type (not in ``outcomes``)."""
    budget_stopped: str | None = None
    deadline_passed: bool = False
    refused_files: tuple[str, ...] = ()
    open_batches: int = 0
    cost_usd: Decimal = Decimal(0)
    baseline_usd: Decimal | None = None

    @property
    def failed(self) -> int:
        return self.outcomes.get("failed", 0) + sum(self.failed_before_sending.values())

    @property
    def tasks(self) -> int:
        return sum(self.outcomes.values()) + sum(self.failed_before_sending.values())


@dataclass(frozen=True)
class RunOutcome:
    """The verdict: ``ok`` or not, why, and the one-line summary for the Prefect state and the terminal."""

    ok: bool
    reasons: tuple[str, ...]
    message: str

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_PROBLEMS

    @property
    def label(self) -> str:
        return "ok" if self.ok else "problems"


def _share(part: int, whole: int) -> str:
    return f"{Decimal(part) / Decimal(whole) * 100:.1f}%" if whole else "0%"


def _counts(facts: RunFacts) -> str:
    """Succeeded and failed first (both, once anything ended), then the other states that have tasks."""
    ended = facts.outcomes.get("succeeded", 0) + facts.failed
    others = {s: n for s, n in facts.outcomes.items() if s not in ("succeeded", "failed") and n}
    parts = (
        []
        if others and not ended
        else [f"{facts.outcomes.get('succeeded', 0):,} succeeded", f"{facts.failed:,} failed"]
    )
    parts += [f"{count:,} {status}" for status, count in sorted(others.items())]
    return ", ".join(parts)


def _money(facts: RunFacts) -> str:
    text = f"cost {dollars_text(facts.cost_usd)}"
    if facts.baseline_usd:
        saved = 1 - facts.cost_usd / facts.baseline_usd
        text += f" ({saved:.0%} below the naive {dollars_text(facts.baseline_usd)})"
    return text


def decide_outcome(facts: RunFacts, *, max_failed_share: Decimal = DEFAULT_MAX_FAILED_SHARE) -> RunOutcome:
    """Apply the policy of this module's docstring to ``facts``."""
    reasons: list[str] = []
    if facts.budget_stopped:
        reasons.append(f"budget stop ({facts.budget_stopped})")
    if facts.deadline_passed:
        reasons.append(f"deadline passed with {facts.open_batches:,} batch(es) open")
    if facts.refused_files:
        reasons.append(f"{len(facts.refused_files):,} source file(s) refused")
    tasks, failed = facts.tasks, facts.failed
    if tasks and Decimal(failed) / Decimal(tasks) > max_failed_share:
        reasons.append(f"{failed:,} of {tasks:,} tasks failed ({_share(failed, tasks)}, over {max_failed_share:.1%})")
    head = "Problems: " + "; ".join(reasons) + ". " if reasons else ""
    before = sum(facts.failed_before_sending.values())
    detail = f" ({before:,} before sending)" if before else ""
    message = f"{head}{_counts(facts)}{detail}; {_money(facts)}"
    if facts.open_batches and not facts.deadline_passed:
        message += f"; {facts.open_batches:,} batch(es) still open (the collect deployment finishes them)"
    return RunOutcome(ok=not reasons, reasons=tuple(reasons), message=message)
