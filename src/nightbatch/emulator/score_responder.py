"""The emulator's rerank scorer: ``{"scores": [...]}``, one score per candidate document.

Switched on by a marker line in the system prompt, ``Output: JSON {"scores": ...}``. The user text holds a
``Question: ...`` line and, after a ``Documents:`` line, one candidate document per line. A document's
score is the share of the question's words (3+ letters) it contains, rounded to two places: deterministic,
so a test knows which documents the top-K keeps. Degraded, the scores come back in reverse order.
"""

from __future__ import annotations

import json
import re
from typing import Final

from nightbatch.emulator.responders import ResponderRequest

__all__ = ["ScoreResponder"]

_MARKER: Final = re.compile(r"Output:\s*JSON\s*\{\s*\"scores\"", re.IGNORECASE)
_WORD: Final = re.compile(r"[a-z0-9]{3,}")


def document_scores(user_text: str) -> list[float]:
    """The score of each document line of ``user_text`` (see the module docstring)."""
    question: set[str] = set()
    documents: list[str] = []
    in_documents = False
    for line in user_text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("question:"):
            question = set(_WORD.findall(stripped[len("question:") :].lower()))
        elif stripped.lower().startswith("documents:"):
            in_documents = True
        elif in_documents and stripped:
            documents.append(stripped.lower())
    if not question:
        return [0.0 for _ in documents]
    return [round(len(question & set(_WORD.findall(d))) / len(question), 2) for d in documents]


class ScoreResponder:
    """Scores the candidate documents of a rerank request."""

    name = "scores"

    def matches(self, request: ResponderRequest) -> bool:
        """An ``Output: JSON {"scores": ...}`` marker."""
        return _MARKER.search(request.system) is not None

    def respond(self, request: ResponderRequest, *, degrade: bool) -> str:
        """The JSON scores (or, degraded, the same scores in reverse document order)."""
        scores = document_scores(request.user_text)
        return json.dumps({"scores": scores[::-1] if degrade else scores})
