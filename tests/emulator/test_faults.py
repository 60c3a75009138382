"""Endpoint and request faults, observed through the real SDK's exceptions and retries."""

from __future__ import annotations

import time

import anthropic
import httpx2
import pytest

from tests.emulator.support import batch_requests, params


def sdk(client: anthropic.Anthropic, retries: int = 0, **options) -> anthropic.Anthropic:
    return client.with_options(max_retries=retries, **options)


@pytest.mark.parametrize(
    ("kind", "exception", "status"),
    [
        ("rate_limit_error", anthropic.RateLimitError, 429),
        ("api_error", anthropic.InternalServerError, 500),
        ("overloaded_error", anthropic.OverloadedError, 529),
        ("authentication_error", anthropic.AuthenticationError, 401),
        ("permission_error", anthropic.PermissionDeniedError, 403),
        ("not_found_error", anthropic.NotFoundError, 404),
        ("request_too_large", anthropic.ContentTooLargeError, 413),
        ("invalid_request_error", anthropic.BadRequestError, 400),
    ],
)
def test_error_faults_raise_the_matching_sdk_exception(anthropic_client, emulator, kind, exception, status):
    emulator.faults.fail("messages", kind)
    with pytest.raises(exception) as caught:
        sdk(anthropic_client).messages.create(**params())
    assert caught.value.status_code == status
    assert caught.value.type == kind
    assert caught.value.body["request_id"] == caught.value.request_id
    assert sdk(anthropic_client).messages.create(**params()).type == "message"  # only the next call failed


def test_429_sends_retry_after(anthropic_client, emulator):
    emulator.faults.fail("batch_retrieve", "rate_limit_error", retry_after=7)
    batch = anthropic_client.messages.batches.create(requests=batch_requests(1))
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk(anthropic_client).messages.batches.retrieve(batch.id)
    assert caught.value.response.headers["retry-after"] == "7"


def test_sdk_retry_honours_retry_after(anthropic_client, emulator):
    emulator.faults.fail("messages", "rate_limit_error", retry_after=0.3)
    started = time.monotonic()
    message = sdk(anthropic_client, retries=1).messages.create(**params())
    assert message.type == "message"
    assert time.monotonic() - started >= 0.3
    calls = [c for c in emulator.request_log() if c["endpoint"] == "messages"]
    assert [(c["status"], c["retry_count"]) for c in calls] == [(429, "0"), (200, "1")]
    assert calls[1]["real_time"] - calls[0]["real_time"] >= 0.3


def test_sdk_retries_overloaded_until_it_gives_up(anthropic_client, emulator):
    emulator.faults.fail("count_tokens", "overloaded_error", times=3, retry_after=0.01)
    with pytest.raises(anthropic.OverloadedError):
        sdk(anthropic_client, retries=2).messages.count_tokens(
            **{k: v for k, v in params().items() if k != "max_tokens"}
        )
    assert [c["status"] for c in emulator.request_log()] == [529, 529, 529]


def test_probability_faults_are_seeded(anthropic_client, emulator):
    def pattern():
        emulator.reset()
        emulator.faults.fail("messages", "api_error", probability=0.5)
        outcome = []
        for _ in range(20):
            try:
                sdk(anthropic_client).messages.create(**params(max_tokens=1))
                outcome.append(True)
            except anthropic.InternalServerError:
                outcome.append(False)
        return outcome

    first = pattern()
    assert 3 <= first.count(False) <= 17
    assert pattern() == first


def test_slow_responses_trip_client_timeouts(anthropic_client, emulator):
    emulator.faults.slow("batch_list", 1.0)
    with pytest.raises(anthropic.APITimeoutError):
        sdk(anthropic_client, timeout=0.2).messages.batches.list()
    assert list(sdk(anthropic_client).messages.batches.list()) == []


def test_dropped_connection_mid_results_stream(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(30))
    emulator.advance(60)
    emulator.faults.drop("batch_results", after_lines=5)
    received: list[str] = []
    results = anthropic_client.messages.batches.results(batch.id)
    with pytest.raises((httpx2.HTTPError, anthropic.APIConnectionError)):
        received.extend(result.custom_id for result in results)
    assert len(received) <= 5  # an abort may also discard lines already in flight
    assert len(list(anthropic_client.messages.batches.results(batch.id))) == 30  # next download is whole


def test_dropped_connection_after_create_still_created_the_batch(anthropic_client, emulator):
    emulator.faults.drop("batch_create")
    with pytest.raises(anthropic.APIConnectionError):
        sdk(anthropic_client).messages.batches.create(requests=batch_requests(3))
    [batch] = list(anthropic_client.messages.batches.list())
    assert batch.request_counts.processing == 3  # the client must reconcile, not blindly resubmit


def test_any_endpoint_rule_and_clear(anthropic_client, emulator):
    emulator.faults.fail("any", "overloaded_error", times=None)
    with pytest.raises(anthropic.OverloadedError):
        sdk(anthropic_client).messages.batches.list()
    with pytest.raises(anthropic.OverloadedError):
        sdk(anthropic_client).messages.create(**params())
    emulator.faults.clear()
    assert sdk(anthropic_client).messages.create(**params()).type == "message"


def test_faults_via_admin_http(anthropic_client, emulator):
    admin = f"{emulator.base_url}/_emulator"
    armed = httpx2.post(f"{admin}/faults", json={"endpoint": "batch_create", "kind": "overloaded_error", "times": 1})
    assert armed.status_code == 200
    assert armed.json()["rules"][0]["remaining"] == 1
    with pytest.raises(anthropic.OverloadedError):
        sdk(anthropic_client).messages.batches.create(requests=batch_requests(1))
    httpx2.post(f"{admin}/faults/requests", json={"outcome": "expired", "custom_ids": ["r0"]})
    batch = anthropic_client.messages.batches.create(requests=batch_requests(2))
    emulator.advance(60)
    kinds = {r.custom_id: r.result.type for r in anthropic_client.messages.batches.results(batch.id)}
    assert kinds == {"r0": "expired", "r1": "succeeded"}
    assert httpx2.delete(f"{admin}/faults").json()["request_faults"] == []
    bad = httpx2.post(f"{admin}/faults", json={"endpoint": "nowhere", "kind": "api_error"})
    assert bad.status_code == 400
