"""The batch-cache planner: figures checked by hand against the shipped price table.

claude-opus-4-8 at batch prices, per MTok: input $2.50, 1 h write $5.00, 5 m write $3.125, read $0.25.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from nightbatch.build.cache_ttl import PRIOR_HIT_RATE, plan_group
from nightbatch.pricing import load_price_table

PRICES = load_price_table()
OPUS = {"model": "claude-opus-4-8", "prices": PRICES, "prefix_tokens": 10_000}


def usd(value: str) -> Decimal:
    return Decimal(value).quantize(Decimal("0.000001"))


def test_prefix_below_the_models_minimum_is_not_cached():
    decision = plan_group(model="claude-haiku-4-5", prices=PRICES, prefix_tokens=4000, requests=1000)
    assert (decision.option, decision.ttl) == ("none", None)
    assert "minimum" in decision.reason


def test_a_cold_group_is_never_sent_with_breakpoints_pilot_first():
    decision = plan_group(**OPUS, requests=200, hit_rate=1.0)
    assert (decision.option, decision.ttl, decision.pilot) == ("pilot_1h", "1h", True)
    # One 1 h write, then 199 reads: 10k x ($5.00 + 199 x $0.25) / MTok.
    assert Decimal(decision.cost_usd["pilot_1h"]) == usd("0.5475")
    # Cached without a pilot, every item of the cold batch writes: dearer than no caching at all.
    assert Decimal(decision.cost_usd["cold_cached"]) == usd("10.0")
    assert Decimal(decision.cost_usd["none"]) == usd("5.0")
    assert decision.option != "cold_cached"


def test_the_measured_hit_rate_is_used_not_an_assumed_hundred_percent():
    # At h = 0.6 a fan-out item costs 0.6 x $0.25 + 0.4 x $5.00 = $2.15/MTok, still under $2.50 input.
    paying = plan_group(**OPUS, requests=200, hit_rate=0.6, measured={"rate": 0.6})
    assert paying.option == "pilot_1h"
    assert paying.hit_rate == 0.6
    assert paying.hit_rate_source == "measured"
    # At h = 0.4 a miss writes so often that caching costs more than plain input: the group is not cached.
    low = plan_group(**OPUS, requests=200, hit_rate=0.4)
    assert (low.option, low.ttl) == ("none", None)
    assert "40%" in low.reason
    # Without any measurement the prior is used, and said so.
    prior = plan_group(**OPUS, requests=200)
    assert prior.hit_rate == PRIOR_HIT_RATE
    assert prior.hit_rate_source.startswith("prior")


def test_a_known_live_entry_is_read_at_once():
    decision = plan_group(**OPUS, requests=50, hit_rate=1.0, live_minutes=45)
    assert (decision.option, decision.ttl, decision.pilot) == ("warm", "1h", False)
    assert Decimal(decision.cost_usd["warm"]) == usd("0.125")  # 50 reads
    # Even one request reads a live entry.
    assert plan_group(**OPUS, requests=1, hit_rate=1.0, live_minutes=45).option == "warm"
    # An entry about to expire is not trusted: a batch may queue before its first item runs.
    assert plan_group(**OPUS, requests=50, hit_rate=1.0, live_minutes=3).option == "pilot_1h"


def test_a_running_pilot_makes_the_group_wait_unless_the_deadline_cannot():
    assert plan_group(**OPUS, requests=50, pilot_running=True).option == "wait"
    late = plan_group(**OPUS, requests=50, pilot_running=True, minutes_to_deadline=30, fanout_minutes=60)
    assert late.option == "none"


def test_a_deadline_too_close_skips_the_pilot():
    decision = plan_group(**OPUS, requests=200, hit_rate=1.0, pilot_minutes=15, fanout_minutes=60,
                          minutes_to_deadline=70)  # fmt: skip
    assert decision.option == "none"
    assert "no room for a pilot" in decision.reason
    roomy = plan_group(**OPUS, requests=200, hit_rate=1.0, pilot_minutes=15, fanout_minutes=60,
                       minutes_to_deadline=80)  # fmt: skip
    assert roomy.option == "pilot_1h"


def test_five_minutes_only_when_the_fan_out_surely_follows_within_five_minutes():
    assert plan_group(**OPUS, requests=200, hit_rate=1.0).option == "pilot_1h"  # lag unknown
    quick = plan_group(**OPUS, requests=200, hit_rate=1.0, fanout_lag_minutes=2)
    assert (quick.option, quick.ttl) == ("pilot_5m", "5m")
    assert plan_group(**OPUS, requests=200, hit_rate=1.0, fanout_lag_minutes=8).option == "pilot_1h"


def test_small_groups_and_failed_pilots_go_uncached():
    assert plan_group(**OPUS, requests=1).option == "none"
    assert plan_group(**OPUS, requests=2, hit_rate=1.0).option == "none"  # one write + one read > two inputs
    assert plan_group(**OPUS, requests=200, hit_rate=1.0, pilot_failures=2).option == "none"


@pytest.mark.parametrize(("mode", "option"), [("off", "none"), ("1h", "pilot_1h"), ("5m", "pilot_1h")])
def test_forced_and_disabled_modes(mode: str, option: str):
    # A forced 5 m TTL still pilots with 1 h unless the fan-out surely follows within 5 minutes: the pilot's
    # entry must outlive the pilot's own latency.
    decision = plan_group(**OPUS, requests=500, mode=mode)
    assert decision.option == option
    assert decision.ttl == (None if mode == "off" else "1h")


def test_forced_five_minutes_fans_out_once_its_pilot_is_in():
    """A 5-minute entry just confirmed by its pilot is read at once, with 5 m breakpoints (not piloted again)."""
    after_pilot = plan_group(**OPUS, requests=499, mode="5m", live_minutes=4.0, live_ttl_minutes=5)
    assert (after_pilot.option, after_pilot.ttl) == ("warm", "5m")
    nearly_gone = plan_group(**OPUS, requests=499, mode="5m", live_minutes=1.0, live_ttl_minutes=5)
    assert nearly_gone.option == "pilot_1h"
    quick = plan_group(**OPUS, requests=500, mode="5m", fanout_lag_minutes=2)
    assert (quick.option, quick.ttl) == ("pilot_5m", "5m")


def test_a_one_hour_entry_is_trusted_until_ten_minutes_before_it_expires():
    assert plan_group(**OPUS, requests=200, hit_rate=1.0, live_minutes=11, live_ttl_minutes=60).option == "warm"
    assert plan_group(**OPUS, requests=200, hit_rate=1.0, live_minutes=9, live_ttl_minutes=60).option == "pilot_1h"


def test_budget_bound_is_the_dearest_price_a_request_can_pay():
    pilot = plan_group(**OPUS, requests=200, hit_rate=1.0)
    assert pilot.prefix_bound_usd(PRICES, "claude-opus-4-8") == Decimal("0.05")  # a 1 h write
    none = plan_group(**OPUS, requests=200, hit_rate=0.1)
    assert none.prefix_bound_usd(PRICES, "claude-opus-4-8") == Decimal("0.025")  # plain input
    record = pilot.as_record()
    assert record["option"] == "pilot_1h"
    assert record["ttl"] == "1h"
    assert "cost_usd" in record
