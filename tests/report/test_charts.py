"""Charts and the HTML page: files written, PNGs real, and a clear skip without matplotlib."""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine

from nightbatch.pricing import PriceTable
from nightbatch.report import (
    ChartsUnavailableError,
    Selection,
    build_report,
    render_charts,
    resolve_selection,
    write_report_page,
)
from tests.report.ledger import Ledger

PNG = b"\x89PNG\r\n\x1a\n"


def test_charts_and_page_are_written(engine: Engine, prices: PriceTable, ledger: Ledger, tmp_path: Path):
    report = build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R2"]))
    render_charts(report)  # the first matplotlib import of a fresh machine builds its font cache: not timed
    started = time.perf_counter()
    page = write_report_page(report, tmp_path / "out")
    assert time.perf_counter() - started < 2.0
    assert page.skipped is None
    assert sorted(p.name for p in page.charts) == ["cost_per_day.png", "hit_rate.png"]
    for chart in page.charts:
        assert chart.read_bytes().startswith(PNG)
        assert chart.stat().st_size > 5_000
    html = page.html.read_text()
    assert html.count('src="data:image/png;base64,') == 2
    assert "Cost per task" in html
    assert "msgbatch_B1" in html
    assert "cache hit rate of triage fell" in html


def test_an_empty_report_still_charts(engine: Engine, prices: PriceTable):
    empty = build_report(engine, prices, Selection.days(date(2026, 1, 1), date(2026, 1, 1)))
    assert all(png.startswith(PNG) for png in render_charts(empty).values())


def test_without_matplotlib_the_page_says_why(
    engine: Engine, prices: PriceTable, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    report = build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R2"]))
    with pytest.raises(ChartsUnavailableError, match=r"pip install 'nightbatch\[charts\]'"):
        render_charts(report)
    page = write_report_page(report, tmp_path)
    assert page.charts == []
    assert page.skipped is not None
    assert "matplotlib" in page.skipped
    assert "charts skipped" in page.html.read_text()


def test_per_run_charts_and_a_page_with_failures_and_shadow_drift(
    engine: Engine, prices: PriceTable, ledger: Ledger, tmp_path: Path
):
    from nightbatch.report.history import run_history

    selection = resolve_selection(engine, run_id=ledger.runs["R2"])
    report = build_report(engine, prices, selection)
    history = run_history(engine, prices, selection)
    assert [h.run_id for h in history][-1] == ledger.runs["R2"]  # up to the selection, oldest first
    r2 = history[-1]
    assert r2.actual_pusd == report.savings.actual_pusd
    assert r2.levers == report.savings.levers()
    assert sum(r2.cost_by_type_model.values()) == report.costs.total.cost_pusd
    assert "triage · claude-haiku-4-5" in r2.cost_by_type_model
    drift = "## Shadow drift\n\n- draft on claude-haiku-4-5: agreement 60% with claude-sonnet-4-6 over 10 tasks"
    page = write_report_page(report, tmp_path, history=history, failures={"output_check": 1},
                             quality_markdown=drift)  # fmt: skip
    assert sorted(p.name for p in page.charts) == [
        "cost_by_type_model.png", "cost_per_day.png", "hit_rate.png", "savings_per_run.png"
    ]  # fmt: skip
    assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 5_000 for p in page.charts)
    html = page.html.read_text()
    assert html.count('src="data:image/png;base64,') == 4
    assert "<h2>Failed tasks: 1</h2>" in html
    assert "<h2>Shadow drift</h2>" in html
    assert "agreement 60% with claude-sonnet-4-6" in html
