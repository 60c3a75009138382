"""Slow and stalled batches: per-model processing delays and the stall knob that make deadlines testable."""

from __future__ import annotations

import httpx2

from tests.emulator.support import MODEL, batch_requests


def status(client, batch_id):  # type: ignore[no-untyped-def]
    return client.messages.batches.retrieve(batch_id)


def test_a_slow_models_batches_wait_within_the_configured_bounds(anthropic_client, emulator):
    emulator.configure(model_batch_delay_seconds={MODEL: (3600, 7200)})
    batch = anthropic_client.messages.batches.create(requests=batch_requests(16))
    emulator.advance(3600)
    assert status(anthropic_client, batch.id).processing_status == "in_progress"
    emulator.advance(3600 + 10)
    done = status(anthropic_client, batch.id)
    assert done.processing_status == "ended"
    waited = (done.ended_at - done.created_at).total_seconds()
    assert 3600 + 7 <= waited <= 7200 + 7  # 5 s start delay + one 2 s wave on top of the draw


def test_models_without_a_delay_are_as_fast_as_before(anthropic_client, emulator):
    emulator.configure(model_batch_delay_seconds={"claude-haiku-4-5": (3600, 3600)})
    batch = anthropic_client.messages.batches.create(requests=batch_requests(16))
    emulator.advance(7)
    assert status(anthropic_client, batch.id).processing_status == "ended"


def test_a_stalled_batch_keeps_what_it_finished_and_expires_the_rest(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(40))
    emulator.stall_batch(batch.id, after_requests=16)
    emulator.advance(23 * 3600)
    assert status(anthropic_client, batch.id).processing_status == "in_progress"
    emulator.advance(3600)
    done = status(anthropic_client, batch.id)
    assert done.processing_status == "ended"
    assert done.request_counts.succeeded == 16
    assert done.request_counts.expired == 24
    assert len(emulator.ledger.entries(batch_id=batch.id)) == 16


def test_canceling_a_stalled_batch_cancels_the_held_requests(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(40))
    emulator.stall_batch(batch.id, after_requests=16)
    emulator.advance(600)
    anthropic_client.messages.batches.cancel(batch.id)
    emulator.advance(5)
    done = status(anthropic_client, batch.id)
    assert done.processing_status == "ended"
    assert (done.request_counts.succeeded, done.request_counts.canceled) == (16, 24)


def test_a_resumed_batch_starts_its_next_wave_at_once(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(20))
    emulator.stall_batch(batch.id)
    emulator.advance(600)
    emulator.resume_batch(batch.id)
    emulator.advance(4)  # two waves of 16 + 4 from now
    done = status(anthropic_client, batch.id)
    assert done.processing_status == "ended"
    assert done.request_counts.succeeded == 20
    assert (done.ended_at - done.created_at).total_seconds() == 604


def test_stall_and_slow_models_over_http(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(4))
    stalled = httpx2.post(f"{emulator.base_url}/_emulator/batches/{batch.id}/stall", json={"after_requests": 2})
    assert stalled.status_code == 200
    assert stalled.json()["stall_at"] == 2
    resumed = httpx2.delete(f"{emulator.base_url}/_emulator/batches/{batch.id}/stall")
    assert resumed.json()["stall_at"] is None
    unknown = httpx2.post(f"{emulator.base_url}/_emulator/batches/msgbatch_nope/stall", json={})
    assert unknown.status_code == 400
    config = f"{emulator.base_url}/_emulator/config"
    patched = httpx2.patch(config, json={"model_batch_delay_seconds": {MODEL: [5, 10]}})
    assert patched.json()["model_batch_delay_seconds"] == {MODEL: [5.0, 10.0]}
    bad = httpx2.patch(config, json={"model_batch_delay_seconds": {MODEL: [10, 5]}})
    assert bad.status_code == 400


def test_serve_reads_slow_models_from_the_command_line():
    import pytest
    import typer

    from nightbatch.cli.emulator_cmds import _slow_models

    assert _slow_models(["claude-opus-4-8=3600:14400", "claude-haiku-4-5=60"]) == {
        "claude-opus-4-8": (3600.0, 14400.0),
        "claude-haiku-4-5": (60.0, 60.0),
    }
    with pytest.raises(typer.BadParameter, match="MODEL=LOW:HIGH"):
        _slow_models(["claude-opus-4-8=soon"])
