"""Escalation: exactly the tasks whose output fails its checks move up a rung; the top rung's failure is final."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from nightbatch.db.models import Task, UsagePurpose, UsageRecord
from nightbatch.emulator import EmulatorServer
from nightbatch.services import Services
from tests.quality.conftest import LADDER, attempts_by_task, enqueue_verdicts, run_until_done, statuses, use_types


def test_failing_tasks_climb_the_ladder_and_every_rung_is_billed(local_services: Services, emulator: EmulatorServer):
    services = local_services
    use_types(services)
    emulator.configure(quality_error_rates={1: 0.4, 2: 0.4, 3: 0.0})
    ids = enqueue_verdicts(services, 60)
    run_until_done(services, emulator)
    assert statuses(services) == {"succeeded": 60}
    attempts = attempts_by_task(services)
    assert set(attempts) == set(ids)
    for task_id, rows in attempts.items():
        models = [a.model for a in rows]
        assert models == list(LADDER[: len(models)]), task_id  # rungs in order, none skipped
        assert all(a.check_passed is False for a in rows[:-1])  # moved up only after a failed check
        assert rows[-1].check_passed is True  # and stopped once it passed
    climbed = [rows for rows in attempts.values() if len(rows) > 1]
    assert 10 < len(climbed) < 45  # about 40% of 60 failed on Haiku
    assert any(len(rows) == 3 for rows in attempts.values())
    # The ledger holds every rung's cost; the task's final model is the one that passed.
    with Session(services.engine) as session:
        usage = [u for (u,) in session.exec(select(UsageRecord))]
        tasks = {t.id: t for (t,) in session.exec(select(Task))}
    assert len(usage) == sum(len(rows) for rows in attempts.values()) == len(emulator.ledger)
    assert {u.purpose for u in usage} == {UsagePurpose.TASK}
    for task_id, rows in attempts.items():
        assert tasks[task_id].model == rows[-1].model


def test_the_top_rungs_failure_is_final_with_every_attempt_kept(local_services: Services, emulator: EmulatorServer):
    services = local_services
    use_types(services)
    emulator.configure(quality_error_rates={1: 1.0, 2: 1.0, 3: 1.0})
    ids = enqueue_verdicts(services, 6)
    run_until_done(services, emulator)
    assert statuses(services) == {"failed": 6}
    with Session(services.engine) as session:
        tasks = [t for (t,) in session.exec(select(Task))]
    assert {t.error_type for t in tasks} == {"output_check"}
    attempts = attempts_by_task(services)
    assert all([a.model for a in attempts[i]] == list(LADDER) for i in ids)


def test_the_report_shows_what_escalation_cost_against_the_top_rung(local_services: Services, emulator: EmulatorServer):
    from nightbatch.report.quality import quality_markdown, quality_report
    from nightbatch.report.query import Selection

    services = local_services
    use_types(services)
    emulator.configure(quality_error_rates={1: 0.4, 2: 0.4, 3: 0.0})
    enqueue_verdicts(services, 30)
    run_until_done(services, emulator)
    report = quality_report(services.engine, services.prices, Selection.everything(), registry=services.registry)
    (line,) = report.escalation
    assert (line.task_type, line.tasks, line.top_model) == ("verdict", 30, "claude-opus-4-8")
    assert 0 < line.escalated < 30
    assert 0 < line.failed_rungs_pusd < line.actual_pusd
    # Most tasks stayed on Haiku, so the cascade costs less than sending everything to Opus.
    assert line.actual_pusd < line.all_top_pusd
    assert "## Escalation" in quality_markdown(report)
