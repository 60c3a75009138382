"""JSON, CSV and Markdown renderings: exact money, parse back to the same figures."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from nightbatch.pricing import PriceTable
from nightbatch.report import (
    COST_COLUMNS,
    Report,
    build_report,
    cost_table_rows,
    report_csv,
    report_markdown,
    report_to_dict,
    resolve_selection,
)
from nightbatch.report.render import usd_text
from tests.report.ledger import ACTUAL, NAIVE, Ledger


@pytest.fixture
def report(engine: Engine, prices: PriceTable, ledger: Ledger) -> Report:
    return build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R2"]))


def test_json_round_trips_exact_money(report: Report):
    data = json.loads(json.dumps(report_to_dict(report)))
    assert data["selection"]["kind"] == "run"
    total = data["costs"]["total"]
    assert Decimal(total["cost_usd"]) == Decimal(ACTUAL) / 10**12
    assert Decimal(total["naive_usd"]) == Decimal(NAIVE) / 10**12
    assert total["tasks"] == 5
    assert total["pass_rate"] == pytest.approx(0.8)
    levers = {lever["lever"]: Decimal(lever["saving_usd"]) for lever in data["savings"]["levers"]}
    assert sum(levers.values()) == Decimal(data["savings"]["saving_usd"])
    assert Decimal(data["savings"]["naive_usd"]) - Decimal(data["savings"]["actual_usd"]) == sum(levers.values())
    assert [t["task_type"] for t in data["cache"]["by_type"] if t["flagged"]] == ["triage"]
    assert data["warnings"] == report.warnings
    assert len(data["warnings"]) == 1
    assert len(data["cache"]["by_batch"]) == 3
    assert data["price_versions"] == ["2026-11-01"]


def test_csv_parses_back_to_the_cost_rows(report: Report):
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert tuple(rows[0]) == COST_COLUMNS
    assert [r["task_type"] for r in rows] == ["draft", "draft", "triage", "(calibration)", "(priming)", "total"]
    assert sum(Decimal(r["cost_usd"]) for r in rows[:-1]) == Decimal(rows[-1]["cost_usd"])
    triage = rows[2]
    assert (triage["model"], triage["tasks"], triage["cache_read_tokens"]) == ("claude-haiku-4-5", "3", "4000")
    assert Decimal(triage["cost_per_task_usd"]) == Decimal("0.000808333333")
    assert rows[4]["pass_rate"] == ""  # overhead rows have no tasks to judge
    assert cost_table_rows(report)[-1]["task_type"] == "total"


def test_markdown_has_headline_warning_and_tables(report: Report):
    text = report_markdown(report)
    assert text.startswith(f"# nightbatch cost report: {report.selection.label}")
    assert "5 billed tasks for $0.0147" in text
    assert "> **Warning:** cache hit rate of triage fell" in text
    assert "| caching saved | -$0.003990 | -8.1% |" in text
    assert "| total | " in text


def test_usd_text_rounds_for_reading():
    assert usd_text(1_234_567 * 10**9) == "$1,234.57"
    assert usd_text(123_456_789) == "$0.000123"
    assert usd_text(None) == "–"
    tiny = [usd_text(pusd) for pusd in (0, 499_999, -3, 500_000, 1_500_000)]
    assert tiny == ["$0.00", "<$0.000001", "-<$0.000001", "<$0.000001", "$0.000002"]
