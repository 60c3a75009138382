"""Cursor paging of the batch list as the API pages it: newest first, by ``after_id`` or ``before_id``."""

from __future__ import annotations

from nightbatch.emulator.errors import invalid_field, invalid_request

__all__ = ["check_page_params", "page"]


def check_page_params(after_id: str | None, before_id: str | None, limit: int) -> None:
    """400 for parameters the API rejects before looking at any batch."""
    if after_id and before_id:
        raise invalid_request("after_id and before_id cannot both be set")
    if not 1 <= limit <= 1000:
        raise invalid_field("limit", f"Input should be between 1 and 1000, not {limit}")


def page(ids: list[str], *, after_id: str | None, before_id: str | None, limit: int) -> tuple[list[str], bool]:
    """The page of ``ids`` (newest first) and whether more exist in the paging direction; 400 for an unknown cursor."""
    cursor = after_id or before_id
    if cursor is not None and cursor not in ids:
        raise invalid_field("after_id" if after_id else "before_id", f"unknown Message Batch id {cursor!r}")
    if after_id:
        start = ids.index(after_id) + 1
        return ids[start : start + limit], start + limit < len(ids)
    if before_id:
        end = ids.index(before_id)
        return ids[max(0, end - limit) : end], end - limit > 0
    return ids[:limit], limit < len(ids)
