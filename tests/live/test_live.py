"""Against the real Anthropic API: skipped unless ANTHROPIC_API_KEY is set (never in CI here).

Cheap on purpose: a token count (free), one real-time call of a few tokens on Haiku, and a one-request
batch canceled at once. Run with ``ANTHROPIC_API_KEY=... pytest -m live tests/live``.
"""

from __future__ import annotations

import os

import pytest

from nightbatch.claude import ClaudeClient
from nightbatch.pricing import Usage, load_price_table, price_usage

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"), reason="live: set ANTHROPIC_API_KEY to run"),
]

MODEL = "claude-haiku-4-5"


@pytest.fixture
def client():
    live = ClaudeClient(api_key=os.environ["ANTHROPIC_API_KEY"], base_url=os.environ.get("ANTHROPIC_BASE_URL"))
    yield live
    live.close()


def test_count_tokens_and_a_tiny_message_price_exactly(client: ClaudeClient):
    params = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "Say OK."}]}
    counted = client.count_tokens(params)
    assert counted > 0
    message = client.create_message(params)
    usage = Usage.from_api(message["usage"])
    assert usage.prompt_tokens > 0
    assert price_usage(load_price_table(), MODEL, usage, "standard").total_pusd > 0


def test_a_batch_is_created_and_canceled(client: ClaudeClient):
    request = {"custom_id": "live-1", "params": {"model": MODEL, "max_tokens": 5,
                                                 "messages": [{"role": "user", "content": "Say OK."}]}}  # fmt: skip
    created = client.create_batch([request])
    assert created.id.startswith("msgbatch_")
    canceled = client.cancel_batch(created.id)
    assert canceled.processing_status in ("canceling", "ended")
