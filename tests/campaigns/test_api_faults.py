"""API fault campaign: whatever the API does, every task ends settled within its attempts, with its error.

(The matrix campaign is being written; this file holds its repros so far.)
"""

from __future__ import annotations

from pathlib import Path

from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from nightbatch.submit.step import submit_step
from nightbatch.tasktypes import load_task_types
from tests.campaigns.harness import PRICES, finish
from tests.campaigns.invariants import check
from tests.campaigns.workload import enqueue_workload, write_config


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
