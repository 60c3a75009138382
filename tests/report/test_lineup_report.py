"""Reports on the current lineup: the naive baseline from the config, unpriced responses named loudly,
savings re-priced per band side and geo. Costs worked out by hand (pUSD per token, see tests/pricing)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from nightbatch.db.models import Run, Task, UsageRecord
from nightbatch.pricing import PriceTable
from nightbatch.report import build_report, resolve_selection, summarize
from nightbatch.report.attention import attention_items
from nightbatch.report.query import ledger_groups
from nightbatch.report.render import cost_table_rows, cost_text_table
from nightbatch.report.savings import BASELINE_MODEL, baseline_model_for, savings
from nightbatch.tasktypes import TaskTypeRegistry, load_task_types

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BILLED = datetime(2026, 11, 20, 3, tzinfo=UTC)


def test_the_baseline_is_the_top_of_the_configs_ladder(tmp_path: Path) -> None:
    assert baseline_model_for(load_task_types(EXAMPLES / "nightbatch.toml")) == "claude-opus-5-5"
    assert baseline_model_for(load_task_types(EXAMPLES / "nightbatch-4x.toml")) == "claude-opus-4-8"
    assert baseline_model_for(None) == BASELINE_MODEL
    assert baseline_model_for(TaskTypeRegistry([]), ["claude-haiku-5-5", "claude-sonnet-5-5"]) == "claude-sonnet-5-5"
    config = tmp_path / "c.toml"
    config.write_text(
        '[task_types.a]\nmodel = "claude-haiku-4-5-20251001"\nmax_tokens = 5\n'
        'escalation = ["claude-haiku-4-5", "claude-fable-5-1"]\nthinking = "disabled"\n'
    )
    assert baseline_model_for(load_task_types(config)) == "claude-fable-5-1"


class Rows:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with engine.begin() as conn:
            self.run_id = int(conn.execute(insert(Run).values(kind="nightly", parameters={}, status="succeeded",
                                                              started_at=BILLED)).inserted_primary_key[0])  # fmt: skip
        self.n = 0

    def usage(self, model: str, cost: int | None, **counts: Any) -> None:
        self.n += 1
        with self.engine.begin() as conn:
            task_id = conn.execute(insert(Task).values(task_type="triage", payload={}, idempotency_key=f"k{self.n}",
                                                       status="succeeded")).inserted_primary_key[0]  # fmt: skip
            conn.execute(insert(UsageRecord).values(
                task_id=task_id, run_id=self.run_id, model=model, service_tier="batch", price_version="v",
                cost_pusd=cost, purpose="task", created_at=BILLED, billed_at=BILLED, **counts,
            ))  # fmt: skip


def test_unpriced_responses_are_out_of_every_level_and_named_loudly(engine: Engine, prices: PriceTable) -> None:
    rows = Rows(engine)
    rows.usage("claude-haiku-5-5", 50_000 * 1_000, input_tokens=1_000)  # 1,000 x 50,000 pUSD (batch)
    rows.usage("claude-mystery-1", None, input_tokens=1_000, output_tokens=10)
    rows.usage("claude-mystery-1", None, input_tokens=5, output_tokens=10)
    selection = resolve_selection(engine, run_id=rows.run_id)
    report = build_report(engine, prices, selection, registry=load_task_types(EXAMPLES / "nightbatch.toml"))
    s = report.savings
    assert s.unpriced == {"claude-mystery-1": 2}
    assert s.actual_pusd == 50_000_000
    assert s.baseline_model == "claude-opus-5-5"
    assert s.naive_pusd == 1_000 * 4_000_000  # only the priced response, real time on Opus 5.5
    assert sum(s.levers().values()) == s.naive_pusd - s.actual_pusd
    assert report.warnings[0].startswith("UNPRICED: 2 billed response(s) have no price (2 on claude-mystery-1)")
    rows_by_model = {r["model"]: r for r in cost_table_rows(report, total=False)}
    assert rows_by_model["claude-mystery-1"]["cost_usd"] is None  # no figure, never $0
    assert rows_by_model["claude-haiku-5-5"]["cost_usd"] is not None
    header, text_rows = cost_text_table(report)
    mystery = next(r for r in text_rows if r[1] == "claude-mystery-1")
    assert mystery[header.index("cost")] == "UNPRICED"
    assert "+2 UNPRICED" in text_rows[-1][header.index("cost")]  # the total says it is incomplete
    # The per-batch and per-day tables never show the unpriced responses as $0 either.
    assert {(b.model, b.unpriced) for b in report.cache.by_batch if b.unpriced} <= {("claude-mystery-1", 2)}
    daily = {(d.model, d.unpriced) for d in report.daily_costs}
    assert ("claude-mystery-1", 2) in daily
    summary = summarize(engine, prices, run_id=rows.run_id)
    assert summary.unpriced == {"claude-mystery-1": 2}
    assert summary.cost_pusd == 50_000_000  # not $0 for the unpriced ones: left out and named
    items = attention_items(engine, TaskTypeRegistry([]), rows.run_id)
    assert any(i.startswith("UNPRICED: 2 billed response(s) on claude-mystery-1") for i in items)


def test_savings_reprice_each_response_on_its_own_side_of_the_band(engine: Engine, prices: PriceTable) -> None:
    rows = Rows(engine)
    # Two Haiku 5.5 responses, each at 100,000 prompt tokens (ordinary prices), and one at 100,001 (band).
    # Summed naively the first two (200,000 tokens) would cross the band; re-priced per side they do not.
    rows.usage("claude-haiku-5-5", 5_000_000_000, input_tokens=100_000)  # 100,000 x 50,000
    rows.usage("claude-haiku-5-5", 5_000_000_000, input_tokens=100_000)
    rows.usage("claude-haiku-5-5", 25_000_250_000, input_tokens=100_001)  # 100,001 x 250,000
    groups = ledger_groups(engine, resolve_selection(engine, run_id=rows.run_id), prices)
    assert sorted((g.responses, g.long_prompt) for g in groups) == [(1, 100_000), (2, 0)]
    s = savings(groups, prices, baseline_model="claude-haiku-5-5")
    # routed (standard, uncached): 200,000 x 100,000 + 100,001 x 500,000
    assert s.routed_pusd == 20_000_000_000 + 50_000_500_000
    assert s.batched_pusd == s.routed_pusd // 2 == s.actual_pusd
    assert s.naive_pusd == s.routed_pusd  # the baseline model has the same band


def test_savings_keep_the_geo_multiplier(engine: Engine, prices: PriceTable) -> None:
    rows = Rows(engine)
    rows.usage("claude-sonnet-5-5", 1_100_000_000, input_tokens=1_000, inference_geo="us")  # 1,000 x 1.1e6
    s = savings(ledger_groups(engine, resolve_selection(engine, run_id=rows.run_id), prices), prices,
                baseline_model="claude-opus-5-5")  # fmt: skip
    assert s.naive_pusd == 1_000 * 4_400_000  # Opus 5.5 input 4e6 x 1.1, real time
    assert s.routed_pusd == 1_000 * 2_200_000
    assert s.batched_pusd == s.actual_pusd == 1_100_000_000
    assert summarize(engine, prices, run_id=rows.run_id).thinking_tokens == 0


def test_without_a_config_the_report_and_the_summary_price_the_naive_case_on_the_top_model_billed(
    engine: Engine, prices: PriceTable
) -> None:
    """`nightbatch report` after `make run` (no nightbatch.toml where the report runs): the same naive baseline
    as the demo's summary, the top model the run billed, not the fallback default."""
    rows = Rows(engine)
    rows.usage("claude-haiku-5-5", 50_000 * 1_000, input_tokens=1_000)
    rows.usage("claude-sonnet-5-5", 50_000 * 1_000, input_tokens=1_000)
    selection = resolve_selection(engine, run_id=rows.run_id)
    assert build_report(engine, prices, selection).savings.baseline_model == "claude-sonnet-5-5"
    assert summarize(engine, prices, run_id=rows.run_id).savings.baseline_model == "claude-sonnet-5-5"
    assert BASELINE_MODEL != "claude-sonnet-5-5"
