"""A client that gives up mid-request (a timeout) leaves the emulator quiet and serving."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import anthropic
import pytest

from nightbatch.emulator import EmulatorServer
from tests.fixtures.emulator import TEST_API_KEY


def test_a_body_cut_short_is_recorded_as_499_without_a_traceback(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
):
    address = urlsplit(emulator.base_url)
    head = (
        "POST /v1/messages/batches HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\nx-api-key: {TEST_API_KEY}\r\nanthropic-version: 2023-06-01\r\n"
        "content-type: application/json\r\ncontent-length: 100000\r\n\r\n"
    )
    with socket.create_connection((address.hostname or "127.0.0.1", address.port or 80)) as client:
        client.sendall(head.encode() + b'{"requests":[')  # and then the client is gone
    deadline = time.monotonic() + 10
    while not any(r["status"] == 499 for r in emulator.request_log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r["endpoint"] for r in emulator.request_log() if r["status"] == 499] == ["batch_create"]
    assert not [r for r in caplog.records if r.exc_info], "a disconnect must not log a traceback"
    with anthropic.Anthropic(base_url=emulator.base_url, api_key=TEST_API_KEY) as sdk:
        assert sdk.messages.batches.list().data == []  # still serving
