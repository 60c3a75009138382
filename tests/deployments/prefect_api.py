"""Calls to a test Prefect server's REST API that ride out its busy moments, as Prefect's own client does.

On two loaded cores the server's SQLite database is sometimes locked for a moment (workers polling and
heartbeating, events being persisted) and the server answers 503; Prefect's client retries those, and so
does this. Any other status is the caller's to check.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

RETRIES = 6
RETRY_STATUS = {502, 503, 504}


def request(method: str, url: str, *, json: Any = None) -> httpx.Response:
    """``method url`` with ``json``; retried with backoff while the server answers 5xx-busy or cannot be reached."""
    for attempt in range(RETRIES):
        last = attempt == RETRIES - 1
        try:
            response = httpx.request(method, url, json=json, timeout=30)
        except httpx.TransportError:
            if last:
                raise
        else:
            if response.status_code not in RETRY_STATUS or last:
                return response
        time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover - the last attempt returns or raises
