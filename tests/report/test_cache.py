"""Cache hit rates from usage rows: the definition, per type and batch, the rolling window and the drop flag."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from nightbatch.pricing import PriceTable
from nightbatch.report import build_report, hit_rate, resolve_selection
from tests.report.ledger import HAIKU, SONNET, Ledger, at, history_run


def test_hit_rate_is_reads_over_cacheable_tokens():
    assert hit_rate(900, 100) == 0.9
    assert hit_rate(0, 100) == 0.0
    assert hit_rate(0, 0) is None  # nothing was eligible for caching: no rate, not 0 %


def test_hit_rates_per_type_and_batch(engine: Engine, prices: PriceTable, ledger: Ledger):
    cache = build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R2"])).cache
    # Every row counts overall, the priming write included: reads 2000+2000+1000, writes 2000+1000+1000.
    assert (cache.cache_read_tokens, cache.cache_write_tokens) == (5000, 4000)
    assert cache.hit_rate == pytest.approx(5 / 9)
    by_type = {t.task_type: t for t in cache.by_type}
    assert by_type["triage"].hit_rate == pytest.approx(4000 / 6000)
    assert by_type["draft"].hit_rate == pytest.approx(1000 / 2000)
    batches = {b.provider_batch_id: (b.task_type, b.model, b.cache_ttl, b.responses) for b in cache.by_batch}
    assert batches == {
        "msgbatch_B1": ("triage", HAIKU, "1h", 3),
        "msgbatch_B2": ("draft", HAIKU, "5m", 1),
        "msgbatch_B3": ("draft", SONNET, "1h", 2),
    }
    rates = {b.provider_batch_id: hit_rate(b.cache_read_tokens, b.cache_write_tokens) for b in cache.by_batch}
    assert rates == {"msgbatch_B1": pytest.approx(2 / 3), "msgbatch_B2": 0.0, "msgbatch_B3": 1.0}


def test_a_drop_below_the_rolling_rate_is_flagged(engine: Engine, prices: PriceTable, ledger: Ledger):
    report = build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R2"]))
    triage, draft = (next(t for t in report.cache.by_type if t.task_type == name) for name in ("triage", "draft"))
    # History before R2 (R3 came later and does not count): triage 100/1000, 9500/10000, 9500/10000.
    assert triage.rolling_runs == 3
    assert triage.rolling_hit_rate == pytest.approx(19_100 / 21_000)
    assert triage.drop_points == pytest.approx((19_100 / 21_000 - 2 / 3) * 100)
    assert triage.flagged
    assert (draft.rolling_hit_rate, draft.drop_points, draft.flagged) == (0.5, 0.0, False)
    [warning] = report.warnings
    assert warning.startswith("cache hit rate of triage fell to 66.7%, 24.3 points below its rolling 91.0%")


def test_the_window_and_thresholds_are_honoured(engine: Engine, prices: PriceTable, ledger: Ledger):
    selection = resolve_selection(engine, run_id=ledger.runs["R2"])
    short = build_report(engine, prices, selection, window=2)
    triage = next(t for t in short.cache.by_type if t.task_type == "triage")
    assert (triage.rolling_runs, triage.rolling_hit_rate) == (2, 0.95)
    assert not triage.flagged  # 28 points down, but two runs are too little history
    assert not build_report(engine, prices, selection, drop_points=30).warnings
    assert build_report(engine, prices, selection, min_runs=2, window=2).warnings


def test_a_day_takes_its_history_from_runs_before_it(engine: Engine, prices: PriceTable, ledger: Ledger):
    report = build_report(engine, prices, resolve_selection(engine, day=date(2026, 11, 20)))
    assert [w.split(",")[0] for w in report.warnings] == ["cache hit rate of triage fell to 66.7%"]
    points = {(p.run_id, p.task_type): (p.hit_rate, p.in_selection) for p in report.cache.history}
    assert points[(ledger.runs["H1"], "triage")] == (0.1, False)
    assert points[(ledger.runs["R2"], "triage")] == (pytest.approx(2 / 3), True)
    assert ledger.runs["R3"] not in {run for run, _ in points}


def test_types_without_history_or_cacheable_tokens_are_not_flagged(engine: Engine, prices: PriceTable, ledger: Ledger):
    history_run(ledger, "R4", 22, triage=(0, 0), draft=(0, 0))  # caching off
    report = build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R4"]))
    assert all(t.hit_rate is None and not t.flagged for t in report.cache.by_type)
    assert report.cache.hit_rate is None
    ledger.run("R5", at(23, 1))
    ledger.task("new", "summarise", "succeeded")
    ledger.usage(run="R5", task="new", model=HAIKU, cost=1, created=at(23), read=1, w1h=99)
    [fresh] = build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R5"])).cache.by_type
    assert (fresh.hit_rate, fresh.rolling_hit_rate, fresh.rolling_runs, fresh.flagged) == (0.01, None, 0, False)
