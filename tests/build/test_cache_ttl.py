"""TTL by break-even arithmetic: figures checked by hand against the shipped price table."""

from __future__ import annotations

from decimal import Decimal

from nightbatch.build.cache_ttl import decide_ttl, expected_writes
from nightbatch.pricing import load_price_table

PRICES = load_price_table()


def test_prefix_below_the_models_minimum_is_not_cached():
    decision = decide_ttl(model="claude-haiku-4-5", prices=PRICES, prefix_tokens=4000, requests=1000)
    assert decision.ttl is None
    assert "minimum" in decision.reason


def test_prefix_used_once_is_not_cached():
    decision = decide_ttl(model="claude-opus-4-8", prices=PRICES, prefix_tokens=10_000, requests=1)
    assert decision.ttl is None


def test_busy_prefix_prefers_the_cheaper_5m_write():
    # 2,000 requests in an hour: the entry is refreshed every ~2 s, a 5 m entry never lapses.
    decision = decide_ttl(model="claude-opus-4-8", prices=PRICES, prefix_tokens=10_000, requests=2000, concurrency=16)
    assert decision.ttl == "5m"
    # 16 writes at 0.625 x $5/MTok and 1,984 reads at 0.05 x $5/MTok, 10k tokens each.
    expected = Decimal(10_000) * (16 * Decimal("3.125") + 1984 * Decimal("0.25")) / Decimal(1_000_000)
    assert Decimal(decision.cost_usd["5m"]) == expected.quantize(Decimal("0.000001"))
    assert Decimal(decision.expected_saving_usd) > 0


def test_sparse_prefix_prefers_one_hour():
    # 10 requests spread over an hour: a 5 m entry would mostly lapse between them.
    decision = decide_ttl(
        model="claude-opus-4-8", prices=PRICES, prefix_tokens=10_000, requests=10, expected_minutes=60, concurrency=1
    )
    assert decision.ttl == "1h"


def test_forced_and_disabled_modes():
    kwargs = {"model": "claude-opus-4-8", "prices": PRICES, "prefix_tokens": 10_000, "requests": 500}
    assert decide_ttl(**kwargs, mode="off").ttl is None  # type: ignore[arg-type]
    assert decide_ttl(**kwargs, mode="1h").ttl == "1h"  # type: ignore[arg-type]


def test_expected_writes_model():
    assert expected_writes(10, 16, 60, 5) == 10  # everything in the first wave writes
    assert expected_writes(1000, 10, 60, 60) < 10.001
    assert 10 < expected_writes(100, 10, 600, 5) < 100


def test_priming_is_chosen_when_the_first_waves_writes_cost_more_than_one_real_time_write():
    decision = decide_ttl(
        model="claude-opus-4-8", prices=PRICES, prefix_tokens=10_000, requests=200, concurrency=16, allow_priming=True
    )
    assert (decision.ttl, decision.prime, decision.option) == ("1h", True, "1h+priming")
    # Priming: one real-time 1 h write (2 x $5/MTok) instead of 16 batch 1 h writes (1 x $5/MTok) less reads.
    assert Decimal(decision.cost_usd["1h+priming"]) < Decimal(decision.cost_usd["1h"])


def test_priming_is_not_chosen_when_the_first_wave_is_tiny():
    decision = decide_ttl(
        model="claude-opus-4-8", prices=PRICES, prefix_tokens=10_000, requests=200, concurrency=1, allow_priming=True
    )
    assert decision.prime is False
