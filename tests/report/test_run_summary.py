"""The cost report as a run's Prefect artifacts show it: every cost row has its hit rate, naive cost and saving;
rows that serve no task are explained; amounts never read $0.0000 or $0.000000."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from nightbatch.pricing import PriceTable
from nightbatch.report import Report, build_report, resolve_selection
from nightbatch.report.money import usd_text
from nightbatch.report.run_summary import DISPLAY_COLUMNS, cost_display_rows, cost_table_description, summary_markdown
from tests.report.ledger import ACTUAL, NAIVE, Ledger


@pytest.fixture
def report(engine: Engine, prices: PriceTable, ledger: Ledger) -> Report:
    return build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R2"]))


def test_nothing_reads_as_dollars_to_six_places():
    assert usd_text(0) == "$0.00"
    assert usd_text(10 * 10**6) == "$0.000010"  # ten microdollars: a twin's saving, not "$0.0000"


def test_every_cost_row_has_its_hit_rate_naive_cost_and_saving(report: Report):
    rows = cost_display_rows(report)
    naive = "naive cost"
    assert tuple(rows[0]) == DISPLAY_COLUMNS
    assert [r["task type"] for r in rows] == ["draft", "draft", "triage", "(calibration)", "(priming)", "total"]
    total = rows[-1]
    assert total[naive] == usd_text(NAIVE)
    assert total["cost"] == usd_text(ACTUAL)
    assert total["saved vs naive"] == f"{1 - ACTUAL / NAIVE:.1%}"
    assert total["prefix hit rate"] == f"{report.prefix_hit_rate:.1%}"
    for row in rows[3:5]:  # overhead rows are not in the baseline: no naive cost, no saving
        assert (row[naive], row["saved vs naive"]) == ("–", "–")
    for row in rows:
        assert "None" not in row.values()
        assert "nan" not in row.values()
        assert all(value.strip() for key, value in row.items() if key != "model")  # the total has no model


def test_the_cost_table_description_names_the_baseline(report: Report):
    """(The SIMULATED label of a run on the emulator is the flows' describe(), on every artifact: tests/flows.)"""
    baseline = report.savings.baseline_model
    assert cost_table_description(report, 7) == (
        f"run 7: cost per task type and model; naive = the same responses real-time on {baseline} without caching"
    )


def test_the_summary_explains_rows_that_serve_no_task(report: Report):
    text = summary_markdown(report)
    assert "- `(calibration)`: requests that measured a route's quality before it was chosen" in text
    assert "- `(priming)`: cache writes sent ahead of their batch" in text
    assert text.index("## Cost per task") < text.index("`(priming)`") < text.index("## Cache hit rate by task type")
    assert "$0.000000" not in text
    assert "None" not in text
