"""What the deadline shows: the fallback's cost as its own line, every task that fell back, expected finishes,
the fallback's worst case in the estimate, and the CLI's status and estimate lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from nightbatch.cli import app
from nightbatch.db.models import BatchStatus
from nightbatch.emulator import EmulatorServer
from nightbatch.forecast import forecast_queue
from nightbatch.report.build import build_report
from nightbatch.report.query import Selection
from nightbatch.report.render import report_markdown, report_to_dict
from nightbatch.report.summary import summarize
from nightbatch.services import Services
from tests.deadline.test_config_and_durations import add_batch
from tests.deadline.test_policies import FINISHED, TASKS, TYPE, enqueue_triage, stall_and_pass_the_deadline, with_policy
from tests.fixtures.services import EXAMPLES


def test_the_summary_and_report_show_the_fallback_apart(services: Services, emulator: EmulatorServer):
    services = with_policy(services, "realtime")
    deadline = datetime.now(UTC) + timedelta(hours=6)
    enqueue_triage(services, deadline)
    (_, settled), _ = stall_and_pass_the_deadline(services, emulator, deadline)
    summary = summarize(services.engine, services.prices)
    assert summary.fallback_tasks == sorted(settled.realtime)
    assert summary.fallback_pusd == settled.fallback_pusd > 0
    assert summary.cost_pusd > summary.fallback_pusd  # the batch's finished results are billed too
    report = build_report(services.engine, services.prices, Selection.everything(), registry=services.registry)
    assert report.deadlines is not None
    assert report.deadlines.fallback_pusd == settled.fallback_pusd
    data = report_to_dict(report)["deadlines"]
    assert len(data["fallback_tasks"]) == TASKS - FINISHED
    assert "real-time fallback (missed the batch window)" in report_markdown(report)


def test_the_estimate_prices_the_fallbacks_worst_case_for_realtime_types_only(
    services: Services, emulator: EmulatorServer
):
    enqueue_triage(services, None)
    plain = forecast_queue(services, [TYPE], use_api=False)
    assert plain.fallback_worst_usd == 0
    assert "real-time fallback" not in plain.describe()
    rescued = forecast_queue(with_policy(services, "realtime"), [TYPE], use_api=False)
    # Standard prices with nothing cached cost more than twice the batch bound's tail-and-output part.
    assert rescued.fallback_worst_usd > rescued.upper_bound_usd
    assert "real-time fallback (on_deadline = realtime) would cost at most" in rescued.describe()


def test_status_and_estimate_show_expected_finishes(env: Path):
    from nightbatch.db import make_engine, upgrade

    url = f"sqlite:///{env / 'cli.db'}"
    upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    for hours in (1, 2, 3):
        add_batch(engine, status=BatchStatus.INGESTED, submitted=now - timedelta(days=1),
                  ended=now - timedelta(days=1, hours=-hours))  # fmt: skip
    add_batch(engine, status=BatchStatus.IN_PROGRESS, submitted=now - timedelta(minutes=10), ended=None)
    engine.dispose()
    status = CliRunner().invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    flat = " ".join(status.output.split())
    assert "expected finish:" in flat
    assert "(p95)" in flat
    estimate = CliRunner().invoke(app, ["estimate", str(EXAMPLES / "tasks" / "ticket_triage.jsonl"), "--offline"])
    assert estimate.exit_code == 0, estimate.output
    flat = " ".join(estimate.output.split())
    assert "a batch of 1,500 on claude-" in flat
    assert "expected to take" in flat
    assert "in flight:" in flat
