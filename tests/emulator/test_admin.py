"""The /_emulator control surface, the in-process runner and persistence across restarts."""

from __future__ import annotations

import httpx2

from nightbatch.emulator import EmulatorConfig, run_emulator
from tests.emulator.support import batch_requests, params
from tests.fixtures.emulator import TEST_API_KEY

HEADERS = {"x-api-key": TEST_API_KEY, "anthropic-version": "2026-10-21"}


def test_clock_endpoints_move_simulated_time(emulator):
    admin = f"{emulator.base_url}/_emulator"
    before = httpx2.get(f"{admin}/clock").json()
    after = httpx2.post(f"{admin}/clock/advance", json={"seconds": 3600}).json()
    assert after["now_epoch"] - before["now_epoch"] == 3600
    assert after["time_scale"] == 0
    assert httpx2.post(f"{admin}/clock/time_scale", json={"time_scale": 60}).json()["time_scale"] == 60
    assert httpx2.post(f"{admin}/clock/advance", json={}).status_code == 400


def test_batch_progresses_with_time_scale(anthropic_client, emulator):
    emulator.configure(time_scale=100_000)  # a simulated day passes in under a second
    batch = anthropic_client.messages.batches.create(requests=batch_requests(3))
    seen = {anthropic_client.messages.batches.retrieve(batch.id).processing_status for _ in range(200)}
    assert "ended" in seen


def test_ledger_stats_requests_and_reset_endpoints(anthropic_client, emulator):
    anthropic_client.messages.create(**params("hi"))
    batch = anthropic_client.messages.batches.create(requests=batch_requests(4))
    emulator.advance(60)
    admin = f"{emulator.base_url}/_emulator"
    ledger = httpx2.get(f"{admin}/ledger").json()
    assert len(ledger["entries"]) == 5
    assert {row["service_tier"]: row["responses"] for row in ledger["totals"]} == {"batch": 4, "standard": 1}
    only = httpx2.get(f"{admin}/ledger", params={"batch_id": batch.id}).json()
    assert {e["custom_id"] for e in only["entries"]} == {f"r{i}" for i in range(4)}
    stats = httpx2.get(f"{admin}/stats").json()
    assert stats["batches"] == {"ended": 1}
    assert stats["calls"]["messages"] == 1
    log = httpx2.get(f"{admin}/requests", params={"limit": 2}).json()["requests"]
    assert [entry["endpoint"] for entry in log] == ["messages", "batch_create"]
    assert httpx2.patch(f"{admin}/config", json={"batch_concurrency": 2}).json()["batch_concurrency"] == 2
    assert httpx2.post(f"{admin}/reset").json()["config"]["batch_concurrency"] == 16
    assert httpx2.get(f"{admin}/ledger").json()["entries"] == []
    gone = httpx2.get(f"{emulator.base_url}/v1/messages/batches/{batch.id}", headers=HEADERS)
    assert gone.status_code == 404


def test_persistent_emulator_survives_a_restart(tmp_path):
    config = EmulatorConfig(time_scale=0, persist_path=tmp_path / "state.pickle")
    with run_emulator(config) as first:
        created = httpx2.post(
            f"{first.base_url}/v1/messages/batches", json={"requests": batch_requests(3)}, headers=HEADERS
        ).json()
        first.advance(60)
    with run_emulator(config) as second:
        url = f"{second.base_url}/v1/messages/batches/{created['id']}"
        again = httpx2.get(url, headers=HEADERS).json()
        assert again["processing_status"] == "ended"
        assert again["request_counts"]["succeeded"] == 3
        assert again["results_url"].startswith(second.base_url)
        assert len(second.ledger.entries()) == 3
    with run_emulator(EmulatorConfig(time_scale=0)) as forgetful:
        assert (
            httpx2.get(f"{forgetful.base_url}/v1/messages/batches/{created['id']}", headers=HEADERS).status_code == 404
        )
