"""Creating a batch from a packed body: streamed through the SDK, the same batch as from the request dicts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nightbatch.build.requests import BuiltRequest, RequestBuilder
from nightbatch.claude.client import ClaudeClient
from nightbatch.emulator import EmulatorServer
from nightbatch.errors import PermanentProviderError
from nightbatch.submit.pack import PackedBatch, pack
from nightbatch.tasktypes import TaskType
from tests.fixtures.emulator import TEST_API_KEY

MODEL = "claude-haiku-4-5"


def _requests(count: int) -> list[BuiltRequest]:
    task_type = TaskType(name="echo", model=MODEL, max_tokens=16, system="Answer briefly.", template="{t}")
    builder = RequestBuilder()
    return [builder.build(i, 1, task_type, MODEL, {"t": f"question {i} — ünïcode"}) for i in range(1, count + 1)]


@pytest.fixture
def client(emulator: EmulatorServer) -> Iterator[ClaudeClient]:
    client = ClaudeClient(api_key=TEST_API_KEY, base_url=emulator.base_url)
    yield client
    client.close()


def _results(client: ClaudeClient, batch_id: str) -> dict[str, str]:
    with client.result_lines(batch_id) as lines:
        return {line.split('"custom_id":"', 1)[1].split('"', 1)[0]: line for line in lines}


def test_a_streamed_body_makes_the_same_batch_as_the_dicts(client: ClaudeClient, emulator: EmulatorServer):
    (packed,) = pack(_requests(40), lambda key, members: None).batches
    streamed = client.create_batch(packed)
    from_dicts = client.create_batch(packed.entries())
    assert streamed.counts.total == from_dicts.counts.total == 40
    emulator.advance(3600)
    by_stream, by_dicts = _results(client, streamed.id), _results(client, from_dicts.id)
    assert sorted(by_stream) == sorted(by_dicts) == sorted(r.custom_id for r in packed.requests)


def test_a_body_the_api_refuses_is_a_permanent_error_naming_the_batch_size(client: ClaudeClient):
    (packed,) = pack(_requests(3), lambda key, members: None).batches
    with pytest.raises(PermanentProviderError, match="creating a batch of 3 requests"):
        client.create_batch(_Truncated(packed))


class _Truncated:
    """A body of the announced length whose closing brackets are blanked: not JSON."""

    def __init__(self, packed: PackedBatch) -> None:
        self.requests, self.payload_bytes = packed.requests, packed.payload_bytes
        self._body = b"".join(packed.body_chunks())[:-2] + b"  "

    def body_chunks(self) -> Iterator[bytes]:
        yield self._body
