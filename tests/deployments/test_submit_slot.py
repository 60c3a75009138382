"""The end-to-end test's check of the submit slot catches submitters that overlapped (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.deployments.submit_slot import Hold, batches_outside_their_hold

T0 = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _hold(flow_run: str, acquired: float, released: float) -> Hold:
    return Hold("nightbatch-submit", 1, 1, flow_run, _at(acquired), _at(released))


def test_batches_created_in_turns_pass():
    holds = [_hold("a", 0, 2), _hold("b", 2.001, 4), _hold("a", 5, 6)]
    batches = [(1, "a", _at(1)), (2, "a", _at(1.9)), (3, "b", _at(3)), (4, "a", _at(5.5))]
    assert batches_outside_their_hold(holds, batches) == []


def test_a_batch_created_after_another_run_acquired_is_caught():
    holds = [_hold("a", 0, 3), _hold("b", 1, 4)]  # both held the slot from 1 s to 3 s: a limit of 2, or none
    problems = batches_outside_their_hold(holds, [(1, "a", _at(0.5)), (2, "a", _at(2)), (3, "b", _at(2.5))])
    assert [p.split(" of ")[0] for p in problems] == ["batch 2"]


def test_a_batch_created_without_the_slot_is_caught():
    holds = [_hold("a", 1, 2)]
    problems = batches_outside_their_hold(holds, [(1, "a", _at(0.5)), (2, "a", _at(2.5))])
    assert [p.split(" of ")[0] for p in problems] == ["batch 1", "batch 2"]
