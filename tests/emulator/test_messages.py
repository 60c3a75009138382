"""/v1/messages and /v1/messages/count_tokens through the real SDK (strict response validation)."""

from __future__ import annotations

import anthropic
import httpx2
import pytest
from anthropic.types import Message

from tests.emulator.support import HAIKU, MODEL, params, prompt_tokens
from tests.fixtures.emulator import TEST_API_KEY


def test_create_returns_a_valid_message_with_full_usage(anthropic_client, emulator):
    raw = anthropic_client.messages.with_raw_response.create(**params("Tell me about batches"))
    message = raw.parse()
    assert isinstance(message, Message)
    assert message.id.startswith("msg_01")
    assert len(message.id) == len("msg_") + 24
    assert raw.headers["request-id"].startswith("req_011C")
    assert message.role == "assistant"
    assert message.type == "message"
    assert message.model == MODEL
    assert message.stop_reason in ("end_turn", "max_tokens")
    usage = message.usage
    assert usage.service_tier == "standard"
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert usage.cache_read_input_tokens == 0
    assert usage.cache_creation_input_tokens == 0
    assert usage.input_tokens > 0
    assert 1 <= usage.output_tokens <= 64
    body = raw.http_response.json()["usage"]
    assert set(body) >= set(anthropic.types.Usage.model_fields)


def test_same_request_same_reply(anthropic_client):
    first = anthropic_client.messages.create(**params("Deterministic?", max_tokens=500))
    second = anthropic_client.messages.create(**params("Deterministic?", max_tokens=500))
    assert first.content == second.content
    assert first.id != second.id


def test_max_tokens_truncates_and_reports_max_tokens(anthropic_client):
    message = anthropic_client.messages.create(**params("Write a lot", max_tokens=3))
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3
    assert len(message.content[0].text) <= 12


def test_stop_sequence_cuts_the_reply(anthropic_client):
    full = anthropic_client.messages.create(**params("Write", max_tokens=2000))
    text = full.content[0].text
    marker = text.split()[3]
    cut = anthropic_client.messages.create(**params("Write", max_tokens=2000, stop_sequences=[marker]))
    assert cut.stop_reason == "stop_sequence"
    assert cut.stop_sequence == marker
    assert cut.content[0].text == text[: text.find(marker)]


def test_max_tokens_zero_prewarms_without_output(anthropic_client):
    message = anthropic_client.messages.create(**params("warm", max_tokens=0))
    assert message.content == []
    assert message.usage.output_tokens == 0
    assert message.stop_reason == "max_tokens"


def test_count_tokens_matches_prompt_tokens_of_create(anthropic_client):
    request = params(
        "How do I reset my password?",
        system=[{"type": "text", "text": "You are helpful. " * 30}],
        tools=[{"name": "lookup", "description": "Find a user", "input_schema": {"type": "object"}}],
    )
    counted = anthropic_client.messages.count_tokens(
        model=request["model"], system=request["system"], messages=request["messages"], tools=request["tools"]
    )
    created = anthropic_client.messages.create(**request)
    assert counted.input_tokens == prompt_tokens(created.usage)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"max_tokens": 0, "model": MODEL, "messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
        ({"messages": [{"role": "user", "content": ""}]}, "non-empty"),
        ({"temperature": 0.5}, "temperature"),
        ({"top_k": 5}, "top_k"),
        ({"max_tokens": 10**6}, "maximum allowed"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"bogus_field": 1}, "Extra inputs"),
        ({"stream": True}, "not emulated"),
    ],
)
def test_invalid_params_are_400_invalid_request_error(emulator, override, fragment):
    body = {**params("hi"), **override}
    answer = httpx2.post(
        f"{emulator.base_url}/v1/messages",
        json=body,
        headers={"x-api-key": TEST_API_KEY, "anthropic-version": "2026-10-21"},
    )
    assert answer.status_code == 400
    error = answer.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert fragment in error["error"]["message"]
    assert error["request_id"] == answer.headers["request-id"]


def test_sdk_raises_bad_request_for_invalid_params(anthropic_client):
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.create(model=MODEL, max_tokens=10, messages=[])
    assert caught.value.type == "invalid_request_error"
    assert caught.value.request_id
    assert caught.value.request_id.startswith("req_")


def test_unknown_model_is_404(anthropic_client):
    with pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client.messages.create(**params("hi", model="claude-imaginary-9"))
    assert caught.value.body["error"] == {"type": "not_found_error", "message": "model: claude-imaginary-9"}


def test_count_tokens_rejects_unknown_model(anthropic_client):
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])


def test_missing_key_is_401_and_both_key_headers_work(emulator):
    url = f"{emulator.base_url}/v1/messages/count_tokens"
    body = {"model": HAIKU, "messages": [{"role": "user", "content": "hi"}]}
    version = {"anthropic-version": "2026-10-21"}
    missing = httpx2.post(url, json=body, headers=version)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert httpx2.post(url, json=body, headers={**version, "x-api-key": "a"}).status_code == 200
    assert httpx2.post(url, json=body, headers={**version, "authorization": "Bearer a"}).status_code == 200
    assert httpx2.post(url, json=body, headers={"x-api-key": "a"}).status_code == 400  # no anthropic-version


def test_configured_keys_reject_others_with_authentication_error(emulator):
    emulator.configure(api_keys=["good-key"])
    client = anthropic.Anthropic(base_url=emulator.base_url, api_key="bad-key", _strict_response_validation=True)
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(**params("hi"))
    good = anthropic.Anthropic(base_url=emulator.base_url, api_key="good-key", _strict_response_validation=True)
    assert good.messages.create(**params("hi")).type == "message"


def test_workspace_header_for_another_workspace_is_403(anthropic_client):
    with pytest.raises(anthropic.PermissionDeniedError):
        anthropic_client.messages.create(**params("hi"), extra_headers={"anthropic-workspace-id": "wrkspc_01other"})


def test_request_too_large_on_messages(anthropic_client, emulator):
    emulator.configure(max_request_bytes=500)
    with pytest.raises(anthropic.ContentTooLargeError) as caught:
        anthropic_client.messages.create(**params("x" * 2000))
    assert caught.value.type == "request_too_large"


def test_unknown_route_is_a_json_not_found(emulator):
    answer = httpx2.get(f"{emulator.base_url}/v1/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "not_found_error"


@pytest.mark.anyio
async def test_async_client_create_and_count(async_anthropic_client):
    message = await async_anthropic_client.messages.create(**params("async hello"))
    counted = await async_anthropic_client.messages.count_tokens(
        model=MODEL, messages=params("async hello")["messages"]
    )
    assert counted.input_tokens == prompt_tokens(message.usage)
