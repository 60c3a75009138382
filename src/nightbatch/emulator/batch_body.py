"""A Message Batch body's structure, checked as the API checks it before accepting the batch.

Only the structure (``requests``, each with a unique ``custom_id`` and a ``params`` object) is checked here,
and a failure rejects the whole batch with a 400; each request's params are checked on their own later
(:func:`nightbatch.emulator.validation.validate_message_params`), a failure making that request ``errored``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from nightbatch.emulator.errors import invalid_field

__all__ = ["validate_batch_body"]

_CUSTOM_ID: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def validate_batch_body(body: object, max_requests: int) -> list[Mapping[str, Any]]:
    """A Message Batch body's requests, or the 400 the API answers for a malformed body.

    Only the structure (``requests``, each with a unique ``custom_id`` and a ``params`` object) is checked
    here, and a failure rejects the whole batch; each request's params are checked on their own later.
    """
    if not isinstance(body, Mapping):
        raise invalid_field("body", "Input should be a valid dictionary")
    for key in body:
        if key != "requests":
            raise invalid_field(key, "Extra inputs are not permitted")
    items = body.get("requests")
    if not isinstance(items, list):
        raise invalid_field("requests", "Field required" if items is None else "Input should be a valid list")
    if not 1 <= len(items) <= max_requests:
        raise invalid_field("requests", f"List should have between 1 and {max_requests} items, not {len(items)}")
    seen: set[str] = set()
    for index, item in enumerate(items):
        path = f"requests.{index}"
        if not isinstance(item, Mapping):
            raise invalid_field(path, "Input should be a valid dictionary")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            raise invalid_field(f"{path}.custom_id", "String should match pattern '^[a-zA-Z0-9_-]{1,64}$'")
        if custom_id in seen:
            raise invalid_field(f"{path}.custom_id", f"duplicate custom_id {custom_id!r}; must be unique in a batch")
        seen.add(custom_id)
        if not isinstance(item.get("params"), Mapping):
            raise invalid_field(f"{path}.params", "Input should be a valid dictionary")
        for key in item:
            if key not in ("custom_id", "params"):
                raise invalid_field(f"{path}.{key}", "Extra inputs are not permitted")
    return items
