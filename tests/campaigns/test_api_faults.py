"""API fault campaign: whatever the API does, every task ends settled within its attempts, with its error.

Each run: a fresh database, store and emulator; 12 tasks of three types (one batch each; the triage
prefix is primed with a real-time call, so every endpoint is used); one fault armed; then rounds of
``submit_step`` -> an hour of provider time -> ``collect_step`` until nothing is left to do, a healthy
pass to settle what the fault left behind, and :func:`tests.campaigns.invariants.check`.

Faults, as a matrix over every endpoint nightbatch calls (messages, count_tokens, batch create /
retrieve / list / cancel / results): 429 with ``retry-after``, 500, 529, a response slower than the
client's timeout, and a connection dropped mid-response. Each fires more often than the SDK retries,
so nightbatch itself sees the failure. ``batch_list`` and ``batch_cancel`` are only called to recover an
unconfirmed create, so their runs start with a dropped create. Then the faults inside batches: errored
results of every error type, part of a batch expiring, a batch canceled half-way, and result lines
malformed on their way out of the API.

What must hold: only :class:`~nightbatch.errors.NightbatchError` escapes a step; every task ends
succeeded, failed or queued, never claimed more often than ``max_attempts``, and a failed or re-tried
task says why; the cost ledger equals what the provider billed, orphans included. Two bills can never
be booked and are counted apart instead: a real-time priming call whose answer was lost (slow or
dropped) and a result line the provider billed but sent malformed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, get_args

import anthropic
import pytest
from anthropic import _base_client
from sqlalchemy import func, select
from sqlmodel import col

from nightbatch.claude import ClaudeClient
from nightbatch.collect.poll import collect_step, open_batches
from nightbatch.db.models import TaskAttempt, UsageRecord
from nightbatch.emulator import EmulatorServer, LedgerEntry
from nightbatch.emulator.faults import ErrorKind
from nightbatch.errors import NightbatchError
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types
from tests.campaigns.harness import PRICES, Sandbox, finish, reset_emulator
from tests.campaigns.invariants import check, expire_leases, open_work, unrecorded_batches
from tests.campaigns.workload import enqueue_workload, write_config

ENDPOINTS = (
    "messages",
    "count_tokens",
    "batch_create",
    "batch_retrieve",
    "batch_list",
    "batch_cancel",
    "batch_results",
)
ENDPOINT_FAULTS = ("429", "500", "529", "timeout", "drop")
ERROR_TYPES: tuple[str, ...] = get_args(ErrorKind)  # every error type the emulator can return
MALFORMED = ("truncated", "unknown_custom_id", "missing_usage", "wrong_types", "duplicate")
TIMEOUT = 0.1  # the client's timeout in this campaign; a "slow" fault answers after SLOW seconds
SLOW = 0.3
TIMES = 3  # an endpoint fault fires on this many calls: one more than the SDK retries
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Scenario:
    row: str
    column: str
    arm: Callable[[EmulatorServer], Any]
    config: dict[str, Any] = field(default_factory=dict)
    advance: float = 3600.0
    after_first_submit: Callable[[Services, EmulatorServer], None] | None = None
    transient: bool = True  # the fault goes away: every task must end succeeded


def _endpoint_fault(fault: str, endpoint: str) -> Callable[[EmulatorServer], None]:
    def arm(emulator: EmulatorServer) -> None:
        if endpoint in ("batch_list", "batch_cancel"):
            emulator.faults.drop("batch_create", times=1)  # the only path that lists and cancels
        faults = emulator.faults
        if fault == "429":
            faults.fail(endpoint, "rate_limit_error", times=TIMES, retry_after=0.01)  # type: ignore[arg-type]
        elif fault == "500":
            faults.fail(endpoint, "api_error", times=TIMES, retry_after=0.01)  # type: ignore[arg-type]
        elif fault == "529":
            faults.fail(endpoint, "overloaded_error", times=TIMES, retry_after=0.01)  # type: ignore[arg-type]
        elif fault == "timeout":
            faults.slow(endpoint, SLOW, times=TIMES)  # type: ignore[arg-type]
        else:
            faults.drop(endpoint, times=TIMES, after_lines=2)  # type: ignore[arg-type]

    return arm


def _cancel_open_batches(services: Services, emulator: EmulatorServer) -> None:
    """An operator cancels every batch half-way through (from the console, say): nightbatch did not ask."""
    emulator.advance(700)  # the first wave of each batch has run
    for _, provider_id in open_batches(services):
        services.client.cancel_batch(provider_id)


def _errored(kind: str, emulator: EmulatorServer) -> None:
    emulator.faults.error_requests(kind, rate=0.4)  # type: ignore[arg-type]


def _malformed(kind: str, emulator: EmulatorServer) -> None:
    emulator.faults.malform_results(kind, rate=0.3)  # type: ignore[arg-type]


def scenarios() -> list[Scenario]:
    found = [Scenario(f, e, _endpoint_fault(f, e)) for f in ENDPOINT_FAULTS for e in ENDPOINTS]
    for error in ERROR_TYPES:
        found.append(
            Scenario(
                f"errored {error}",
                "results",
                partial(_errored, error),
                transient=False,
            )
        )
    # Two requests a wave, a wave every 30,000 s: the third wave of the 6-request batch cannot end before
    # the batch expires (24 h), so those two requests expire and the rest of the batch succeeds.
    found.append(
        Scenario("expired part", "batch", lambda em: None, {"batch_concurrency": 2, "wave_seconds": 30_000}, 90_000)
    )
    found.append(
        Scenario(
            "canceled mid-way",
            "batch",
            lambda em: None,
            {"batch_concurrency": 2, "wave_seconds": 600},
            after_first_submit=_cancel_open_batches,
        )
    )
    for kind in MALFORMED:
        found.append(
            Scenario(
                f"malformed {kind}",
                "results",
                partial(_malformed, kind),
                transient=False,
            )
        )
    return found


@dataclass
class Cell:
    """What one run left behind."""

    tasks: Counter[str] = field(default_factory=Counter)
    orphans: int = 0
    errors: int = 0
    bad_lines: int = 0
    resent: int = 0
    unbooked: int = 0
    violations: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = " ".join(f"{k[0].upper()}{v}" for k, v in sorted(self.tasks.items(), key=lambda kv: -kv[1]))
        extras = [("r", self.resent), ("e", self.errors), ("o", self.orphans), ("b", self.bad_lines)]
        extras.append(("u", self.unbooked))
        return " ".join([text, *(f"{tag}{n}" for tag, n in extras if n)]) + (" !" if self.violations else "")


def _unbookable(emulator: EmulatorServer, billed: list[LedgerEntry], booked: set[str], row: str) -> list[LedgerEntry]:
    """Bills nobody can book: a result line billed but sent malformed, a real-time answer that never arrived.

    A lost real-time answer is one billed message our ledger lacks; at most one per ``messages`` call
    that was dropped or timed out (the SDK retried it, and the retry was booked).
    """
    lost: list[LedgerEntry] = []
    if row.startswith("malformed") and row != "malformed duplicate":
        lost += [e for e in billed if e.batch_id and emulator.faults.result_malformation(e.batch_id, e.custom_id or "")]
    cut = sum(1 for r in emulator.request_log() if r["endpoint"] == "messages" and r["fault"] in ("drop", "slow"))
    lost += [e for e in billed if e.batch_id is None and e.message_id not in booked][:cut]
    return lost


def _booked_messages(services: Services) -> set[str]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(col(UsageRecord.response_id)).where(col(UsageRecord.response_id).is_not(None)))
        return {str(response_id) for response_id in rows.scalars()}


def _observed(services: Services, scenario: Scenario, fired: int, cell: Cell) -> bool:
    """Whether the fault really happened in this run (else the cell tested nothing)."""
    if scenario.row in ENDPOINT_FAULTS:
        return fired > 0
    if scenario.row.startswith("malformed"):
        return cell.bad_lines > 0
    wanted = {"expired part": "expired", "canceled mid-way": "canceled"}.get(scenario.row, "errored")
    with services.engine.connect() as conn:
        return bool(conn.execute(select(func.count()).where(col(TaskAttempt.result_type) == wanted)).scalar_one())


def _rounds(services: Services, emulator: EmulatorServer, scenario: Scenario, cell: Cell) -> None:
    """Submit, let provider time pass, collect, until nothing is left and every armed fault has fired."""
    for round_number in range(12):
        expire_leases(services.engine)  # an hour passes between rounds: the leases of failed calls lapse
        try:
            submit_step(services)
        except NightbatchError:
            cell.errors += 1
        if round_number == 0 and scenario.after_first_submit:
            scenario.after_first_submit(services, emulator)
        emulator.advance(scenario.advance)
        try:
            collected = collect_step(services)
        except NightbatchError:
            cell.errors += 1
        else:
            cell.errors += len(collected.errors)
            cell.bad_lines += sum(len(r.bad_lines) + len(r.unknown_custom_ids) for r in collected.ingested)
        if (
            open_work(services.engine) == (0, 0)
            and not emulator.faults.snapshot()["rules"]
            and not unrecorded_batches(services.engine, services.client)
        ):
            return


def run_scenario(sandbox: Sandbox, emulator: EmulatorServer, config: Path, scenario: Scenario, seed: int) -> Cell:
    cell = Cell()
    with sandbox.run() as run:
        reset_emulator(emulator, seed, **scenario.config)
        enqueue_workload(run.engine, per_type=6, types=("triage",))
        enqueue_workload(run.engine, per_type=3, types=("dates", "drafts"))
        services = run.services(emulator.base_url, "faulty")
        services.registry = load_task_types(config)
        services._client = ClaudeClient(api_key="sk-ant-campaign", base_url=emulator.base_url, timeout=TIMEOUT)
        scenario.arm(emulator)
        try:
            _rounds(services, emulator, scenario, cell)
        except Exception as exc:  # anything but our own errors escaping a step is a finding
            cell.violations.append(f"{type(exc).__name__} escaped a step: {exc}")
        if scenario.row == "timeout":
            time.sleep(SLOW)  # a call that timed out on our side may still land at the provider
        fired = int(emulator.faults.snapshot()["triggered"])  # type: ignore[call-overload]
        malformed = {
            (e.batch_id, e.custom_id)
            for e in _unbookable(emulator, emulator.ledger.entries(), set(), scenario.row)
            if e.batch_id
        }
        emulator.faults.clear()
        cell.errors += len(finish(services, emulator))  # settle what the fault left behind, with no fault
        billed = emulator.ledger.entries()
        lost = _unbookable(emulator, billed, _booked_messages(services), "")
        lost += [e for e in billed if (e.batch_id, e.custom_id) in malformed]
        outcome = check(
            run.engine,
            run.store,
            [e for e in billed if e not in lost],
            PRICES,
            max_attempts=MAX_ATTEMPTS,
            errors_recorded=True,
        )
        cell.unbooked = len(lost)
        cell.tasks, cell.orphans = outcome.tasks, outcome.orphans
        with run.engine.connect() as conn:
            results = conn.execute(select(func.count()).where(col(TaskAttempt.purpose) == "task")).scalar_one()
        cell.resent = max(0, results - sum(outcome.tasks.values()))
        cell.violations += outcome.violations
        if scenario.transient and outcome.tasks.get("succeeded", 0) != sum(outcome.tasks.values()):
            cell.violations.append(f"a transient fault left tasks unfinished: {dict(outcome.tasks)}")
        if not _observed(services, scenario, fired, cell):
            cell.violations.append("the fault never happened: this run tested nothing")
        services.close()
    return cell


@pytest.fixture
def fast_sdk_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's backoff (0.5 s, doubling) shrunk to milliseconds: production's retry count, in test time."""
    monkeypatch.setattr(_base_client, "INITIAL_RETRY_DELAY", 0.005)
    monkeypatch.setattr(_base_client, "MAX_RETRY_DELAY", 0.02)
    assert anthropic.DEFAULT_MAX_RETRIES == 2


@pytest.mark.slow
@pytest.mark.usefixtures("fast_sdk_backoff")
def test_every_api_fault_leaves_every_task_settled_and_every_bill_booked(
    db_url: str, db_backend: str, emulator: EmulatorServer, tmp_path: Path
):
    config = write_config(tmp_path, prime=True)
    sandbox = Sandbox(db_url, tmp_path, config)
    cells: dict[tuple[str, str], Cell] = {}
    for seed, scenario in enumerate(scenarios()):
        cells[scenario.row, scenario.column] = run_scenario(sandbox, emulator, config, scenario, seed)
    print(f"\nAPI fault campaign [{db_backend}]: {len(cells)} runs, 12 tasks each")
    print(matrix(cells))
    violations = [f"{row} x {column}: {v}" for (row, column), c in cells.items() for v in c.violations]
    print(f"violations {len(violations)}")
    for violation in violations[:40]:
        print("  VIOLATION", violation[:600])
    assert not violations


def matrix(cells: dict[tuple[str, str], Cell]) -> str:
    """Endpoint faults as a fault x endpoint table; the faults inside batches as a list."""
    width = 16
    lines = ["fault".ljust(9) + "".join(e.removeprefix("batch_").ljust(width) for e in ENDPOINTS)]
    for fault in ENDPOINT_FAULTS:
        lines.append(fault.ljust(9) + "".join(str(cells[fault, e]).ljust(width) for e in ENDPOINTS))
    for (row, column), cell in cells.items():
        if row not in ENDPOINT_FAULTS:
            lines.append(f"{row} ({column})".ljust(40) + str(cell))
    lines.append("S/F/Q: tasks succeeded/failed/queued; r: results beyond one per task (tasks sent again);")
    lines.append("e: errors the steps raised or reported; o: orphan batches recorded; b: bad result lines reported;")
    lines.append("u: bills that cannot be booked (a lost real-time answer, a malformed billed line); !: violation")
    return "\n".join(lines)


def test_two_unconfirmed_creates_of_equal_size_are_not_mixed_up(
    services: Services, emulator: EmulatorServer, tmp_path: Path
):
    services.registry = load_task_types(write_config(tmp_path))
    enqueue_workload(services.engine, per_type=3, types=("triage", "drafts"))  # two batches of 3 requests
    emulator.faults.fail("batch_create", "api_error", times=1)  # a 500 before anything was created
    emulator.faults.drop("batch_create", times=1)  # created, but the answer is lost
    submit_step(services)  # both rows stay pending: the outcome of either create is unknown
    emulator.advance(3600)  # the leases lapse; the batch that exists runs meanwhile
    finish(services, emulator)
    outcome = check(services.engine, services.store, emulator.ledger.entries(), PRICES)
    assert outcome.violations == []


def test_a_priming_call_whose_answer_was_lost_is_billed_once_not_twice(
    services: Services, emulator: EmulatorServer, tmp_path: Path
):
    services.registry = load_task_types(write_config(tmp_path, prime=True))
    enqueue_workload(services.engine, per_type=6, types=("triage",))  # six requests: priming pays
    emulator.faults.drop("messages", times=1)  # billed, then the connection is cut (priming does not retry)
    submit_step(services)
    billed = [e for e in emulator.ledger.entries() if e.batch_id is None]
    with services.engine.connect() as conn:
        booked = conn.execute(select(func.count()).where(col(UsageRecord.purpose) == "priming")).scalar_one()
    # Priming does not retry, so a lost answer costs one bill, not two; its usage never arrived, so it is
    # reported (an error in the log) rather than guessed into the ledger.
    assert len(billed) == 1
    assert booked == 0
