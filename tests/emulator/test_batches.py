"""Message Batches lifecycle, listing, results and create-time validation through the real SDK."""

from __future__ import annotations

import json
from datetime import timedelta

import anthropic
import httpx2
import pytest
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from tests.emulator.support import MODEL, batch_requests, params
from tests.fixtures.emulator import TEST_API_KEY

# Test config: 16 requests per wave, a wave every 2 s, first wave 5 s after creation.


def counts(batch: MessageBatch) -> dict[str, int]:
    return batch.request_counts.model_dump()


def test_create_shape_and_counts_stay_processing_until_the_end(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(40))
    assert batch.id.startswith("msgbatch_01")
    assert len(batch.id) == len("msgbatch_") + 24
    assert batch.processing_status == "in_progress"
    assert batch.results_url is None
    assert batch.expires_at - batch.created_at == timedelta(hours=24)
    assert batch.ended_at is None
    assert batch.archived_at is None
    assert batch.cancel_initiated_at is None
    assert counts(batch) == {"processing": 40, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    emulator.advance(8)  # two of three waves done
    middle = anthropic_client.messages.batches.retrieve(batch.id)
    assert middle.processing_status == "in_progress"
    assert counts(middle)["processing"] == 40
    emulator.advance(3)
    done = anthropic_client.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended"
    assert counts(done) == {"processing": 0, "succeeded": 40, "errored": 0, "canceled": 0, "expired": 0}
    assert done.ended_at - done.created_at == timedelta(seconds=11)
    assert done.results_url == f"{emulator.base_url}/v1/messages/batches/{batch.id}/results"


def test_results_through_sdk_are_complete_valid_and_shuffled(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(30))
    emulator.advance(60)
    results = list(anthropic_client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == sorted(f"r{i}" for i in range(30))
    assert [r.custom_id for r in results] != [f"r{i}" for i in range(30)]
    for result in results:
        MessageBatchIndividualResponse.model_validate(result.model_dump())  # strict shape check
        assert result.result.type == "succeeded"
        assert result.result.message.usage.service_tier == "batch"
        assert result.result.message.id.startswith("msg_01")
    again = [r.custom_id for r in anthropic_client.messages.batches.results(batch.id)]
    assert again == [r.custom_id for r in results]


def test_result_lines_validate_against_sdk_types(emulator, anthropic_client):
    batch = anthropic_client.messages.batches.create(
        requests=[*batch_requests(3), {"custom_id": "bad", "params": params("x", model="nope")}]
    )
    anthropic_client.messages.batches.cancel(batch.id)
    emulator.advance(60)
    url = anthropic_client.messages.batches.retrieve(batch.id).results_url
    answer = httpx2.get(url, headers={"x-api-key": TEST_API_KEY, "anthropic-version": "2026-10-21"})
    lines = answer.text.splitlines()
    assert len(lines) == 4
    parsed = [MessageBatchIndividualResponse.model_validate(json.loads(line)) for line in lines]
    assert {p.result.type for p in parsed} == {"canceled"}


def test_cancel_goes_through_canceling_to_ended_with_canceled_results(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(40))
    emulator.advance(6)  # the first wave (16 requests) ran
    canceled = anthropic_client.messages.batches.cancel(batch.id)
    assert canceled.processing_status == "canceling"
    assert canceled.cancel_initiated_at is not None
    assert counts(canceled)["processing"] == 40
    emulator.advance(1)
    assert anthropic_client.messages.batches.retrieve(batch.id).processing_status == "canceling"
    emulator.advance(5)
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert counts(ended) == {"processing": 0, "succeeded": 16, "errored": 0, "canceled": 24, "expired": 0}
    kinds = {r.custom_id: r.result.type for r in anthropic_client.messages.batches.results(batch.id)}
    assert {kinds[f"r{i}"] for i in range(16)} == {"succeeded"}
    assert {kinds[f"r{i}"] for i in range(16, 40)} == {"canceled"}
    assert len(emulator.ledger.entries(batch_id=batch.id)) == 16  # canceled requests are not billed
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.cancel(batch.id)


def test_slow_batches_expire_after_24_hours(anthropic_client, emulator):
    emulator.configure(batch_concurrency=1, wave_seconds=3600)
    batch = anthropic_client.messages.batches.create(requests=batch_requests(30))
    emulator.advance(23 * 3600)
    assert anthropic_client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    emulator.advance(3600)
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.ended_at == ended.expires_at
    assert counts(ended) == {"processing": 0, "succeeded": 23, "errored": 0, "canceled": 0, "expired": 7}
    results = {r.custom_id: r.result.type for r in anthropic_client.messages.batches.results(batch.id)}
    assert [results[f"r{i}"] for i in range(22, 25)] == ["succeeded", "expired", "expired"]


def test_archived_after_29_days(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(2))
    emulator.advance(60)
    assert anthropic_client.messages.batches.retrieve(batch.id).archived_at is None
    emulator.advance(29 * 86400)
    archived = anthropic_client.messages.batches.retrieve(batch.id)
    assert archived.archived_at == archived.created_at + timedelta(days=29)
    with pytest.raises(anthropic.NotFoundError):
        list(anthropic_client.messages.batches.results(batch.id))


def test_delete_only_ended_batches(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(2))
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.batches.delete(batch.id)
    assert "cancel" in caught.value.body["error"]["message"]
    anthropic_client.messages.batches.cancel(batch.id)
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.delete(batch.id)  # still canceling
    emulator.advance(60)
    deleted = anthropic_client.messages.batches.delete(batch.id)
    assert deleted.id == batch.id
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.batches.retrieve(batch.id)


def test_batches_are_private_to_the_workspace(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(1))
    other = anthropic.Anthropic(base_url=emulator.base_url, api_key="another-key", _strict_response_validation=True)
    with pytest.raises(anthropic.NotFoundError):
        other.messages.batches.retrieve(batch.id)
    assert list(other.messages.batches.list()) == []


def test_list_newest_first_with_auto_pagination_both_ways(anthropic_client, emulator):
    ids = []
    for _ in range(5):
        ids.append(anthropic_client.messages.batches.create(requests=batch_requests(1)).id)
        emulator.advance(1)
    newest_first = ids[::-1]
    assert [b.id for b in anthropic_client.messages.batches.list(limit=2)] == newest_first
    page = anthropic_client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more
    assert (page.first_id, page.last_id) == (newest_first[0], newest_first[1])
    after = anthropic_client.messages.batches.list(limit=2, after_id=newest_first[1])
    assert [b.id for b in after.data] == newest_first[2:4]
    assert after.has_more
    last = anthropic_client.messages.batches.list(limit=2, after_id=newest_first[3])
    assert [b.id for b in last.data] == newest_first[4:]
    assert not last.has_more
    before = anthropic_client.messages.batches.list(limit=2, before_id=newest_first[4])
    assert [b.id for b in before.data] == newest_first[2:4]
    assert before.has_more
    upward = [b.id for b in anthropic_client.messages.batches.list(limit=2, before_id=newest_first[4])]
    assert sorted(upward) == sorted(newest_first[:4])
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.list(limit=1001)


@pytest.mark.anyio
async def test_async_client_batch_round_trip(async_anthropic_client, emulator):
    batches = async_anthropic_client.messages.batches
    batch = await batches.create(requests=batch_requests(20))
    emulator.advance(60)
    assert (await batches.retrieve(batch.id)).processing_status == "ended"
    seen = [r.custom_id async for r in await batches.results(batch.id)]
    assert sorted(seen) == sorted(f"r{i}" for i in range(20))
    listed = [b.id async for b in batches.list(limit=1)]
    assert listed == [batch.id]
    other = await batches.create(requests=batch_requests(2))
    assert (await batches.cancel(other.id)).processing_status == "canceling"
    emulator.advance(60)
    assert (await batches.delete(other.id)).type == "message_batch_deleted"


# ------------------------------------------------------------------ create-time validation
@pytest.mark.parametrize("custom_id", ["", "has space", "x" * 65, "dots.not.allowed"])
def test_bad_custom_id_fails_create(anthropic_client, custom_id):
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client.messages.batches.create(requests=[{"custom_id": custom_id, "params": params()}])
    assert "custom_id" in caught.value.body["error"]["message"]


def test_duplicate_custom_id_fails_create(anthropic_client):
    requests = [{"custom_id": "same", "params": params()}, {"custom_id": "same", "params": params()}]
    with pytest.raises(anthropic.BadRequestError, match="duplicate"):
        anthropic_client.messages.batches.create(requests=requests)


def test_empty_batch_fails_create(anthropic_client):
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.create(requests=[])


def test_more_than_configured_requests_fails_create(anthropic_client, emulator):
    emulator.configure(max_batch_requests=5)
    with pytest.raises(anthropic.BadRequestError, match="between 1 and 5"):
        anthropic_client.messages.batches.create(requests=batch_requests(6))


def test_more_than_100k_requests_fails_create(emulator):
    one = json.dumps({"custom_id": "ID", "params": params("q", max_tokens=1)}, separators=(",", ":"))
    body = '{"requests":[' + ",".join(one.replace('"ID"', f'"r{i}"') for i in range(100_001)) + "]}"
    answer = httpx2.post(
        f"{emulator.base_url}/v1/messages/batches",
        content=body.encode(),
        headers={"x-api-key": TEST_API_KEY, "anthropic-version": "2026-10-21", "content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 400
    assert "100000" in answer.json()["error"]["message"]


def test_body_over_the_limit_is_413_by_content_length(anthropic_client, emulator):
    emulator.configure(max_batch_bytes=4000)
    with pytest.raises(anthropic.ContentTooLargeError) as caught:
        anthropic_client.messages.batches.create(requests=batch_requests(100))
    assert caught.value.body["error"]["type"] == "request_too_large"
    assert anthropic_client.messages.batches.create(requests=batch_requests(2)).request_counts.processing == 2


def test_body_over_the_limit_is_413_when_streamed_without_length(emulator):
    emulator.configure(max_batch_bytes=4000)
    payload = json.dumps({"requests": batch_requests(100)}).encode()

    def chunks():
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    answer = httpx2.post(
        f"{emulator.base_url}/v1/messages/batches",
        content=chunks(),
        headers={"x-api-key": TEST_API_KEY, "anthropic-version": "2026-10-21"},
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "request_too_large"


def test_invalid_params_become_errored_results(anthropic_client, emulator):
    bad = {
        "no-model": {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        "unknown-model": params(model="claude-nope"),
        "zero-max": params(max_tokens=0),
        "empty-messages": {**params(), "messages": []},
        "temperature": params(temperature=0.3),
        "bad-role": {**params(), "messages": [{"role": "bot", "content": "x"}]},
        "five-breakpoints": params(
            system=[{"type": "text", "text": f"s{i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
        ),
        "ttl-order": params(
            system=[
                {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "b", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            ]
        ),
        "stream": params(stream=True),
    }
    requests = [{"custom_id": cid, "params": p} for cid, p in bad.items()] + batch_requests(1)
    batch = anthropic_client.messages.batches.create(requests=requests)
    emulator.advance(60)
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert counts(ended) == {"processing": 0, "succeeded": 1, "errored": len(bad), "canceled": 0, "expired": 0}
    results = {r.custom_id: r.result for r in anthropic_client.messages.batches.results(batch.id)}
    assert results["unknown-model"].error.error.type == "not_found_error"
    for custom_id in set(bad) - {"unknown-model"}:
        assert results[custom_id].type == "errored"
        assert results[custom_id].error.error.type == "invalid_request_error", custom_id
        assert results[custom_id].error.request_id.startswith("req_")
    assert len(emulator.ledger.entries(batch_id=batch.id)) == 1  # errored requests are not billed


def test_request_faults_error_and_expire_chosen_requests(anthropic_client, emulator):
    emulator.faults.error_requests("overloaded_error", custom_ids={"r1", "r2"})
    emulator.faults.expire_requests(custom_ids={"r3"})
    emulator.faults.error_requests("api_error", rate=0.5)
    batch = anthropic_client.messages.batches.create(requests=batch_requests(40))
    emulator.advance(60)
    results = {r.custom_id: r.result for r in anthropic_client.messages.batches.results(batch.id)}
    assert results["r1"].error.error.type == "overloaded_error"
    assert results["r2"].type == "errored"
    assert results["r3"].type == "expired"
    api_errors = [cid for cid, r in results.items() if r.type == "errored" and r.error.error.type == "api_error"]
    assert 8 <= len(api_errors) <= 32
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert counts(ended)["expired"] == 1
    assert counts(ended)["errored"] == 2 + len(api_errors)
    assert len(emulator.ledger.entries(batch_id=batch.id)) == counts(ended)["succeeded"]


def test_queue_cap_answers_429(anthropic_client, emulator):
    emulator.configure(max_queued_batch_requests=10)
    anthropic_client.messages.batches.create(requests=batch_requests(8))
    with pytest.raises(anthropic.RateLimitError):
        anthropic_client.with_options(max_retries=0).messages.batches.create(requests=batch_requests(5))


def test_batch_usage_matches_model_and_ledger(anthropic_client, emulator):
    batch = anthropic_client.messages.batches.create(requests=batch_requests(5, model=MODEL))
    emulator.advance(60)
    results = {r.custom_id: r.result.message for r in anthropic_client.messages.batches.results(batch.id)}
    billed = {e.custom_id: e for e in emulator.ledger.entries(batch_id=batch.id)}
    for custom_id, message in results.items():
        entry = billed[custom_id]
        assert entry.service_tier == "batch"
        assert entry.model == MODEL
        assert entry.message_id == message.id
        assert (entry.input_tokens, entry.output_tokens) == (message.usage.input_tokens, message.usage.output_tokens)
