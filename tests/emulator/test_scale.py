"""Size: 100k-request batches end quickly when configured fast, and per-request state stays compact."""

from __future__ import annotations

import gc
import json
import tracemalloc

import httpx2
import pytest

from nightbatch.emulator import EmulatorConfig, EmulatorState
from tests.emulator.support import HAIKU
from tests.fixtures.emulator import TEST_API_KEY

HEADERS = {"x-api-key": TEST_API_KEY, "anthropic-version": "2026-10-21", "content-type": "application/json"}


def body_of(count: int) -> bytes:
    template = json.dumps(
        {
            "custom_id": "CID",
            "params": {
                "model": HAIKU,
                "max_tokens": 300,
                "system": [{"type": "text", "text": "Answer briefly. " * 20, "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": "Ticket NUM: my invoice looks wrong"}],
            },
        },
        separators=(",", ":"),
    )
    head, _, tail = template.partition("CID")
    middle, _, end = tail.partition("NUM")
    return (
        ("[" + ",".join(f"{head}r{i}{middle}{i}{end}" for i in range(count)) + "]").join(('{"requests":', "}")).encode()
    )


@pytest.mark.slow
def test_100k_request_batch_end_to_end(emulator):
    emulator.configure(batch_concurrency=10_000, wave_seconds=1)
    created = httpx2.post(
        f"{emulator.base_url}/v1/messages/batches", content=body_of(100_000), headers=HEADERS, timeout=120
    )
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]
    emulator.advance(60)
    ended = httpx2.get(f"{emulator.base_url}/v1/messages/batches/{batch_id}", headers=HEADERS, timeout=120).json()
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"]["succeeded"] == 100_000
    seen = set()
    with httpx2.stream("GET", ended["results_url"], headers=HEADERS, timeout=120) as stream:
        for line in stream.iter_lines():
            seen.add(json.loads(line)["custom_id"])
    assert len(seen) == 100_000
    assert len(emulator.ledger.entries(batch_id=batch_id)) == 100_000


def test_processed_requests_are_stored_compactly():
    state = EmulatorState(EmulatorConfig(time_scale=0, batch_concurrency=5_000, wave_seconds=1))
    body = json.loads(body_of(10_000))
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        state.create_batch("wrkspc_test", body, "2026-10-21")
        del body
        state.clock.advance(60)
        state.sync()
        gc.collect()
        per_request = (tracemalloc.get_traced_memory()[0] - baseline) / 10_000
    finally:
        tracemalloc.stop()
    assert per_request < 2_000, f"{per_request:.0f} bytes per processed request"
