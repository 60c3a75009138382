"""Cost per task type × model, and selections, against the hand-computed ledger."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from nightbatch.errors import InputError, StateError
from nightbatch.pricing import PriceTable
from nightbatch.report import build_report, resolve_selection
from nightbatch.report.costs import mean_pusd, pass_rate
from nightbatch.report.query import Selection
from tests.report.ledger import ACTUAL, E6, HAIKU, OPUS, SONNET, Ledger, at


def test_cost_per_task_type_and_model(engine: Engine, prices: PriceTable, ledger: Ledger):
    report = build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R2"]))
    rows = {(r.task_type, r.model): r for r in report.costs.rows}
    assert list(rows) == [
        ("draft", SONNET),  # by type, then the dearer model first
        ("draft", HAIKU),
        ("triage", HAIKU),
        ("(calibration)", OPUS),  # rows serving no task come last
        ("(priming)", SONNET),
    ]

    triage = rows["triage", HAIKU]
    assert (triage.tasks, triage.responses, triage.passed, triage.failed_check) == (3, 3, 2, 1)
    assert (triage.usage.input_tokens, triage.usage.output_tokens) == (300, 30)
    assert (triage.cache_write_tokens, triage.usage.cache_read_tokens) == (2000, 4000)
    assert triage.cost_pusd == (2_075 + 175 + 175) * E6
    assert triage.cost_per_task_pusd == 808_333_333  # 2_425e6 / 3, to the picodollar
    assert triage.cost_per_success_pusd == 1_212_500_000  # 2_425e6 / 2 successes
    assert triage.pass_rate == pytest.approx(2 / 3)

    # t4 failed its check on haiku (it was billed again, on sonnet) and passed on sonnet.
    escalated = rows["draft", HAIKU]
    assert (escalated.tasks, escalated.passed, escalated.failed_check) == (1, 0, 1)
    assert escalated.pass_rate == 0.0
    assert escalated.cost_per_success_pusd is None
    draft = rows["draft", SONNET]
    assert (draft.tasks, draft.passed, draft.failed_check, draft.cost_pusd) == (2, 2, 0, 4_500 * E6)
    assert draft.cost_per_task_pusd == 2_250 * E6

    priming = rows["(priming)", SONNET]
    assert (priming.tasks, priming.responses, priming.cost_pusd, priming.pass_rate) == (0, 1, 6_015 * E6, None)
    assert priming.cost_per_task_pusd is None

    total = report.costs.total
    assert total.cost_pusd == ACTUAL
    assert (total.tasks, total.responses, total.passed, total.failed_check) == (5, 8, 4, 1)
    assert total.pass_rate == pytest.approx(0.8)
    assert total.cost_per_task_pusd == 2_938 * E6
    assert total.cost_per_success_pusd == 3_672_500_000


def test_a_day_covers_the_rows_billed_that_day(engine: Engine, prices: PriceTable, ledger: Ledger):
    by_run = build_report(engine, prices, resolve_selection(engine, run_id=ledger.runs["R2"]))
    by_day = build_report(engine, prices, resolve_selection(engine, day=date(2026, 11, 20)))
    assert by_day.costs == by_run.costs
    assert by_day.savings == by_run.savings
    history = build_report(
        engine, prices, resolve_selection(engine, since=date(2026, 11, 17), until=date(2026, 11, 19))
    )
    assert history.costs.total.responses == 6
    assert history.costs.total.cost_pusd == 6


def test_default_selection_is_the_latest_run_that_billed(engine: Engine, ledger: Ledger):
    ledger.run("empty", started=at(22))  # started later, billed nothing
    assert resolve_selection(engine).run_id == ledger.runs["R3"]


def test_selection_errors_name_the_problem(engine: Engine):
    with pytest.raises(StateError, match="no runs yet"):
        resolve_selection(engine)
    with pytest.raises(InputError, match="run 99 does not exist"):
        resolve_selection(engine, run_id=99)
    with pytest.raises(InputError, match="not --run and --day"):
        resolve_selection(engine, run_id=1, day=date(2026, 11, 20))
    with pytest.raises(InputError, match="is after --until"):
        resolve_selection(engine, since=date(2026, 11, 20), until=date(2026, 11, 19))


def test_an_empty_selection_reports_nothing(engine: Engine, prices: PriceTable):
    report = build_report(engine, prices, Selection.days(date(2026, 1, 1), date(2026, 1, 1)))
    assert report.empty
    assert report.costs.total.tasks == 0
    assert report.savings.saving_fraction is None
    assert report.cache.hit_rate is None


def test_means_round_to_the_picodollar():
    assert mean_pusd(10, 4) == 2  # 2.5 -> 2 (half to even)
    assert mean_pusd(14, 4) == 4  # 3.5 -> 4
    assert mean_pusd(1, 0) is None
    assert pass_rate(0, 0) is None
    assert pass_rate(3, 1) == 0.75
