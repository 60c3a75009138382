"""Context trimming: send only what a task needs.

Applied to the task *payload* before rendering, per the type's :class:`~nightbatch.tasktypes.ContextPolicy`:

- ``conversation`` (a list of turns): keep the first turn (the original task) and the last N.
- ``documents`` (retrieved chunks): keep the first K, assuming the retriever ranked them.

Tool trimming needs no code here: a type sends only the tools it lists. The tokens removed are
estimated with :func:`estimate_tokens` (the real tokenizer is not public) and recorded per task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nightbatch.tasktypes import ContextPolicy

__all__ = ["TrimResult", "estimate_tokens", "trim_payload"]


def estimate_tokens(value: Any) -> int:
    """A cheap token estimate: about four bytes of UTF-8 text per token."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return (len(text.encode("utf-8")) + 3) // 4


@dataclass(frozen=True)
class TrimResult:
    """The payload to render and how much trimming removed."""

    payload: dict[str, Any]
    turns_dropped: int = 0
    documents_dropped: int = 0
    tokens_removed: int = 0


def trim_payload(payload: dict[str, Any], policy: ContextPolicy) -> TrimResult:
    """Apply ``policy`` to ``payload``; the input is not modified."""
    trimmed = payload
    turns_dropped = documents_dropped = tokens_removed = 0
    conversation = payload.get("conversation")
    if policy.keep_last_turns is not None and isinstance(conversation, list):
        keep = policy.keep_last_turns
        if len(conversation) > keep + 1:
            dropped = conversation[1 : len(conversation) - keep]
            kept = [conversation[0], *conversation[len(conversation) - keep :]] if keep else [conversation[0]]
            trimmed = {**trimmed, "conversation": kept}
            turns_dropped = len(dropped)
            tokens_removed += estimate_tokens(dropped)
    documents = payload.get("documents")
    if policy.max_documents is not None and isinstance(documents, list) and len(documents) > policy.max_documents:
        dropped_docs = documents[policy.max_documents :]
        trimmed = {**trimmed, "documents": documents[: policy.max_documents]}
        documents_dropped = len(dropped_docs)
        tokens_removed += estimate_tokens(dropped_docs)
    return TrimResult(trimmed, turns_dropped, documents_dropped, tokens_removed)
