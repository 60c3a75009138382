"""The run outcome policy: which nights are Failed, and what the one-line summary says."""

from __future__ import annotations

from decimal import Decimal

from nightbatch.outcome_policy import EXIT_OK, EXIT_PROBLEMS, RunFacts, decide_outcome


def test_a_clean_night_is_ok_and_summed_up_outcomes_first():
    outcome = decide_outcome(
        RunFacts(outcomes={"succeeded": 12_000}, cost_usd=Decimal("12.3456"), baseline_usd=Decimal("100"))
    )
    assert outcome.ok
    assert outcome.exit_code == EXIT_OK
    assert outcome.message.startswith("12,000 succeeded, 0 failed")
    assert "cost $12.35 (88% below the naive $100.00)" in outcome.message


def test_failures_at_the_threshold_are_ok_above_it_are_a_problem():
    at = decide_outcome(RunFacts(outcomes={"succeeded": 995, "failed": 5}))
    assert at.ok
    assert "5 failed" in at.message  # still named
    above = decide_outcome(RunFacts(outcomes={"succeeded": 994, "failed": 6}))
    assert not above.ok
    assert above.exit_code == EXIT_PROBLEMS
    assert above.message.startswith("Problems: 6 of 1,000 tasks failed (0.6%, over 0.5%).")


def test_failures_before_sending_count_as_failures():
    outcome = decide_outcome(RunFacts(outcomes={"succeeded": 40}, failed_before_sending={"template_field": 2}))
    assert not outcome.ok
    assert "2 of 42 tasks failed" in outcome.message
    assert "2 failed (2 before sending)" in outcome.message


def test_the_threshold_is_a_setting():
    facts = RunFacts(outcomes={"succeeded": 90, "failed": 10})
    assert decide_outcome(facts, max_failed_share=Decimal("0.1")).ok
    assert not decide_outcome(facts, max_failed_share=Decimal("0.05")).ok


def test_budget_stop_deadline_and_refused_files_each_fail_the_run():
    base = {"outcomes": {"succeeded": 10}}
    budget = decide_outcome(RunFacts(**base, budget_stopped="run budget $5.00 reached"))
    deadline = decide_outcome(RunFacts(**base, deadline_passed=True, open_batches=2))
    refused = decide_outcome(RunFacts(**base, refused_files=("a.jsonl:3: not JSON",)))
    assert [o.ok for o in (budget, deadline, refused)] == [False, False, False]
    assert "budget stop (run budget $5.00 reached)" in budget.reasons[0]
    assert deadline.reasons == ("deadline passed with 2 batch(es) open",)
    assert refused.reasons == ("1 source file(s) refused",)


def test_open_batches_without_a_passed_deadline_are_handed_on_not_a_problem():
    outcome = decide_outcome(RunFacts(outcomes={"submitted": 50}, open_batches=1))
    assert outcome.ok
    assert "50 submitted" in outcome.message
    assert "1 batch(es) still open" in outcome.message


def test_an_empty_night_is_ok():
    assert decide_outcome(RunFacts()).ok


def test_a_small_night_does_not_read_as_free():
    outcome = decide_outcome(RunFacts(outcomes={"succeeded": 2}, cost_usd=Decimal("0.000412"),
                                      baseline_usd=Decimal("0.0041")))  # fmt: skip
    assert "cost $0.000412 (90% below the naive $0.004100)" in outcome.message
