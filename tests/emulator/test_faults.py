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


def test_a_fresh_batch_is_404_for_a_few_seconds_after_create(anthropic_client, emulator):
    emulator.faults.not_found_after_create(5.0)
    client = sdk(anthropic_client)
    batch = client.messages.batches.create(requests=batch_requests(2))
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.batches.retrieve(batch.id)
    body = caught.value.body
    assert body["type"] == "error"
    assert body["error"] == {
        "type": "not_found_error",
        "message": f"message_batch_id: no Message Batch with id {batch.id!r}",
    }
    assert body["request_id"].startswith("req_")
    assert emulator.request_log()[-1]["fault"] == "fresh_404"
    emulator.advance(5)
    assert client.messages.batches.retrieve(batch.id).id == batch.id
    assert emulator.faults.snapshot()["not_found_after_create_seconds"] == 5.0


def test_fresh_batch_results_404_then_download(anthropic_client, emulator):
    emulator.configure(batch_start_delay_seconds=0, wave_seconds=0.5)
    emulator.faults.not_found_after_create(3.0)
    client = sdk(anthropic_client)
    batch = client.messages.batches.create(requests=batch_requests(2))
    emulator.advance(1)  # ended, but still inside the 404 window
    with pytest.raises(anthropic.NotFoundError):
        list(client.messages.batches.results(batch.id))
    raw = httpx2.get(
        f"{emulator.base_url}/v1/messages/batches/{batch.id}/results",
        headers={"x-api-key": "sk-ant-emulator-test-key", "anthropic-version": "2023-06-01"},
    )
    assert raw.status_code == 404
    assert raw.json()["error"]["type"] == "not_found_error"
    emulator.advance(2)
    assert len(list(client.messages.batches.results(batch.id))) == 2


def test_a_batch_item_over_the_messages_size_limit_is_errored(anthropic_client, emulator):
    emulator.configure(max_request_bytes=4_000)
    requests = [
        {"custom_id": "big", "params": params("x" * 5_000)},
        {"custom_id": "small", "params": params("hello")},
    ]
    batch = anthropic_client.messages.batches.create(requests=requests)
    emulator.advance(3600)
    results = {r.custom_id: r.result for r in anthropic_client.messages.batches.results(batch.id)}
    assert results["small"].type == "succeeded"
    assert results["big"].type == "errored"
    assert results["big"].error.error.type == "invalid_request_error"
    assert "maximum allowed number of bytes" in results["big"].error.error.message
    assert [e.custom_id for e in emulator.ledger.entries(batch_id=batch.id)] == ["small"]


def test_a_50_mb_single_request_is_refused_at_the_real_limits(anthropic_client, emulator):
    big = params("x" * 50_000_000)
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk(anthropic_client).messages.create(**big)
    assert caught.value.status_code == 413
    assert caught.value.body["error"]["type"] == "request_too_large"
    batch = anthropic_client.messages.batches.create(requests=[{"custom_id": "big", "params": big}])
    emulator.advance(3600)
    [line] = anthropic_client.messages.batches.results(batch.id)
    assert line.result.type == "errored"
    assert line.result.error.error.type == "invalid_request_error"


def test_fresh_batch_404_armed_over_http(anthropic_client, emulator):
    armed = httpx2.post(f"{emulator.base_url}/_emulator/faults/fresh_404", json={"seconds": 2})
    assert armed.json()["not_found_after_create_seconds"] == 2.0
    batch = anthropic_client.messages.batches.create(requests=batch_requests(1))
    with pytest.raises(anthropic.NotFoundError):
        sdk(anthropic_client).messages.batches.retrieve(batch.id)
    emulator.advance(2)
    assert sdk(anthropic_client).messages.batches.retrieve(batch.id).id == batch.id
    bad = httpx2.post(f"{emulator.base_url}/_emulator/faults/fresh_404", json={"seconds": "soon"})
    assert bad.status_code == 400
