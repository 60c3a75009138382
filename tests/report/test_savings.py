"""Savings: the naive baseline and the routing / batching / caching levers, exact to the picodollar."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from nightbatch.errors import UnknownModelError
from nightbatch.pricing import PriceTable, Usage
from nightbatch.report import build_report, resolve_selection, summarize
from nightbatch.report.query import LedgerGroup
from nightbatch.report.savings import Savings, savings
from tests.report.ledger import ACTUAL, BATCHED, E6, HAIKU, NAIVE, ROUTED, SONNET, Ledger


def test_levels_match_the_hand_computed_ledger(engine: Engine, prices: PriceTable, ledger: Ledger):
    s = build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R2"])).savings
    assert (s.naive_pusd, s.routed_pusd, s.batched_pusd, s.actual_pusd) == (NAIVE, ROUTED, BATCHED, ACTUAL)
    assert s.levers() == {
        "routing": (64_250 - 21_025) * E6,
        "batching": (21_025 - 10_700) * E6,
        # The 6_015e6 priming request cost more than the reads it enabled saved: caching lost money here,
        # and the report says so rather than hiding it in another lever.
        "caching": (10_700 - 14_690) * E6,
    }
    assert sum(s.levers().values()) == s.saving_pusd == NAIVE - ACTUAL
    shares = s.shares()
    assert sum(v for v in shares.values() if v is not None) == pytest.approx(1.0)
    assert shares["caching"] is not None
    assert shares["caching"] < 0
    # Per group, the naive cost of its task responses.
    assert s.naive_by_group[("triage", HAIKU)] == 3 * 10_750 * E6
    assert s.naive_by_group[("draft", SONNET)] == (10_000 + 9_500) * E6


def _group(purpose: str, tier: str, cost: int, usage: Usage, model: str = HAIKU) -> LedgerGroup:
    return LedgerGroup("t" if purpose == "task" else None, model, purpose, tier, date(2026, 11, 20), 1, usage, cost)


def test_overhead_is_charged_to_the_lever_that_caused_it(prices: PriceTable):
    task = _group("task", "batch", 500_000_000, Usage(input_tokens=1000))  # 1000 x 0.5e6
    base = savings([task], prices)
    assert (base.naive_pusd, base.routed_pusd, base.batched_pusd) == (5_000 * E6, 1_000 * E6, 500 * E6)
    for purpose, lever in (("priming", "caching"), ("orphan", "batching"), ("shadow", "routing")):
        extra = savings([task, _group(purpose, "batch", 7 * E6, Usage(input_tokens=1))], prices)
        assert extra.naive_pusd == base.naive_pusd
        assert extra.levers()[lever] == base.levers()[lever] - 7 * E6, purpose
        assert sum(extra.levers().values()) == extra.naive_pusd - extra.actual_pusd


def test_caching_saves_when_reads_outweigh_writes(prices: PriceTable):
    # 10 requests of a 10_000-token prefix on haiku in a batch: one 1h write, nine reads.
    write = _group("task", "batch", 10_000 * E6, Usage(cache_write_1h_tokens=10_000))
    reads = _group("task", "batch", 9 * 10_000 * 50_000, Usage(cache_read_tokens=90_000))
    s = savings([write, reads], prices)
    assert s.batched_pusd == 100_000 * 500_000  # every prompt token uncached at the batch price
    assert s.caching_pusd == 50_000 * E6 - (10_000 + 4_500) * E6
    assert s.saving_fraction is not None
    assert 0 < s.saving_fraction < 1


def test_a_standard_tier_task_response_gets_no_batching_credit(prices: PriceTable):
    s = savings([_group("task", "standard", 1_000 * E6, Usage(input_tokens=1000))], prices)
    assert s.batching_pusd == 0
    assert s.caching_pusd == 0


def test_the_baseline_model_is_configurable(engine: Engine, prices: PriceTable, ledger: Ledger):
    selection = resolve_selection(engine, run_id=ledger.runs["R2"])
    on_sonnet = build_report(engine, prices, selection, baseline_model=SONNET).savings
    assert on_sonnet.naive_pusd == NAIVE * 3 // 5  # sonnet's 3/15 against opus's 5/25
    with pytest.raises(UnknownModelError):
        build_report(engine, prices, selection, baseline_model="claude-nonexistent")


def test_no_saving_has_no_shares():
    assert Savings().shares() == {"routing": None, "batching": None, "caching": None}
    assert Savings().saving_fraction is None


def test_summarize_keeps_its_api(engine: Engine, prices: PriceTable, ledger: Ledger):
    summary = summarize(engine, prices, run_id=ledger.runs["R2"])
    assert summary.outcomes == {"succeeded": 4, "failed": 1}
    assert summary.tasks_by_model == {HAIKU: 4, SONNET: 3, "claude-opus-4-8": 1}
    assert summary.billed_responses == 8
    assert summary.prompt_tokens == 300 + 6000 + 1500 + 500 + 1400 + 1000 + 50
    assert summary.output_tokens == 30 + 200 + 300 + 100 + 1 + 5
    assert (summary.cache_read_tokens, summary.cache_write_tokens) == (5000, 4000)
    assert summary.cache_hit_rate == pytest.approx(5 / 9)
    assert (summary.cost_pusd, summary.baseline_pusd) == (ACTUAL, NAIVE)
    assert summary.cost_usd == Decimal("0.01469")
    assert summary.saving_fraction == pytest.approx(1 - ACTUAL / NAIVE)
    assert summary.savings.levers()["routing"] == NAIVE - ROUTED
    everything = summarize(engine, prices)
    assert everything.billed_responses == 8 + 2 * 4  # R2, and two rows in each of H1..H3 and R3
