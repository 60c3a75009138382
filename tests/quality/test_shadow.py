"""Shadow sampling: close to its fraction, billed, never changes the task, and measured against the route."""

from __future__ import annotations

from nightbatch.db.queries.quality import pass_rates
from nightbatch.emulator import EmulatorServer
from nightbatch.quality.shadow import in_shadow_sample
from nightbatch.report.quality import measured_drift
from nightbatch.services import Services
from tests.quality.conftest import attempts_by_task, enqueue_tickets, run_until_done, statuses, use_types


def test_sample_is_close_to_its_fraction():
    share = sum(in_shadow_sample(i, 0.05) for i in range(20_000)) / 20_000
    assert abs(share - 0.05) < 0.006
    assert not any(in_shadow_sample(i, 0.0) for i in range(1000))


def test_shadow_requests_are_measured_and_do_not_touch_the_task(local_services: Services, emulator: EmulatorServer):
    services = local_services
    use_types(services)
    emulator.configure(quality_error_rates={1: 0.3, 2: 0.0, 3: 0.0})
    enqueue_tickets(services, 80)
    run_until_done(services, emulator, rounds=2)
    assert statuses(services) == {"succeeded": 80}
    shadows = attempts_by_task(services, purpose="shadow")
    assert 8 <= len(shadows) <= 35  # 25% of 80, give or take
    assert all(rows[0].model == "claude-sonnet-4-6" for rows in shadows.values())
    routed = attempts_by_task(services)
    assert all(len(rows) == 1 and rows[0].model == "claude-haiku-4-5" for rows in routed.values())
    drift = measured_drift(services.engine, services.registry)
    assert len(drift) == 1
    assert drift[0].pairs == len(shadows)
    assert drift[0].agreement < 0.95  # Haiku's wrong labels disagree with Sonnet's
    assert drift[0].drifted
    rates = {(r.model, r.purpose): r for r in pass_rates(services.engine)}
    assert rates[("claude-haiku-4-5", "task")].checked == 80
