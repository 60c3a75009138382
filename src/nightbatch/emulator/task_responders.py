"""Built-in responders for the task shapes nightbatch runs: classification, date extraction, verdicts.

Each is switched on by a marker line in the system prompt (case-insensitive):

* ``Labels: billing, bug, feature_request, account, other`` -> :class:`ClassifierResponder` answers
  exactly one label: the first label whose full name appears in the user text, else the first label
  one of whose words (split on ``_``, ``-``, spaces; 3+ letters) appears, else a hash-chosen label.
* ``Output: JSON {"date": ...}`` -> :class:`DateResponder` answers ``{"date": "YYYY-MM-DD"}`` for the
  first date in the user text (ISO ``2026-03-05``, ``2026/03/05``, ``5.3.2026``, ``March 5, 2026``,
  ``5 March 2026``, ``Mar 5 2026``), or ``{"date": null}``.
* ``Verdict: approve|reject|escalate`` -> :class:`VerdictResponder` answers
  ``{"verdict": ..., "reason": ...}``: the first option named in the user text, else a hash-chosen one.

When asked to degrade (the per-tier quality error rate) they answer a different label, malformed
JSON, ``null`` or an off-by-one date.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Final

from nightbatch.emulator.responders import ResponderRequest
from nightbatch.emulator.score_responder import ScoreResponder

__all__ = ["ClassifierResponder", "DateResponder", "VerdictResponder", "builtin_responders"]

_LABELS: Final = re.compile(r"^[ \t]*Labels:[ \t]*(?P<labels>\S.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_DATE_MARKER: Final = re.compile(r"Output:\s*JSON\s*\{\s*\"date\"", re.IGNORECASE)
_VERDICT: Final = re.compile(
    r"^[ \t]*Verdict:[ \t]*(?P<options>[\w -]+(?:\|[\w -]+)+)[ \t]*$", re.IGNORECASE | re.MULTILINE
)


def _mentions(text: str, phrase: str) -> bool:
    pattern = r"(?<![a-z0-9])" + re.escape(phrase.lower()) + r"(?:s|es)?(?![a-z0-9])"
    return re.search(pattern, text.lower()) is not None


class ClassifierResponder:
    """Answers one label from a ``Labels:`` line."""

    name = "classifier"

    @staticmethod
    def labels(request: ResponderRequest) -> list[str]:
        """Labels declared by the system prompt (empty when there is no marker)."""
        found = _LABELS.search(request.system)
        if found is None:
            return []
        return [label.strip() for label in re.split(r"[,|]", found["labels"]) if label.strip()]

    def matches(self, request: ResponderRequest) -> bool:
        """A ``Labels:`` line with at least one label."""
        return bool(self.labels(request))

    @staticmethod
    def correct_label(labels: list[str], text: str, request: ResponderRequest) -> str:
        """The label the rules pick for ``text``."""
        for label in labels:
            if _mentions(text, label) or _mentions(text, re.sub(r"[_-]+", " ", label)):
                return label
        for label in labels:
            if any(len(word) >= 3 and _mentions(text, word) for word in re.split(r"[_\-\s]+", label)):
                return label
        return labels[request.rng("classifier-fallback").randrange(len(labels))]

    def respond(self, request: ResponderRequest, *, degrade: bool) -> str:
        """The label (or, degraded, another one)."""
        labels = self.labels(request)
        label = self.correct_label(labels, request.user_text, request)
        others = [other for other in labels if other != label]
        if degrade and others:
            return others[request.rng("classifier-wrong").randrange(len(others))]
        return label


_MONTHS: Final = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_MONTH: Final = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_PATTERNS: Final = [
    re.compile(r"\b(?P<year>\d{4})[-/](?P<mon>\d{1,2})[-/](?P<day>\d{1,2})\b"),
    re.compile(r"\b(?P<day>\d{1,2})\.(?P<mon>\d{1,2})\.(?P<year>\d{4})\b"),
    re.compile(r"\b" + _MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})\b", re.IGNORECASE),
    re.compile(r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH + r",?\s+(?P<year>\d{4})\b", re.IGNORECASE),
]


def find_date(text: str) -> date | None:
    """The first valid date written in one of the supported formats, or None."""
    found: list[tuple[int, date]] = []
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            parts = match.groupdict()
            month = int(parts["mon"]) if parts.get("mon") else _MONTHS[parts["month"].lower()]
            try:
                found.append((match.start(), date(int(parts["year"]), month, int(parts["day"]))))
            except ValueError:
                continue
    return min(found)[1] if found else None


class DateResponder:
    """Answers ``{"date": "YYYY-MM-DD"}`` or ``{"date": null}``."""

    name = "date"

    def matches(self, request: ResponderRequest) -> bool:
        """An ``Output: JSON {"date": ...}`` marker."""
        return _DATE_MARKER.search(request.system) is not None

    def respond(self, request: ResponderRequest, *, degrade: bool) -> str:
        """The JSON answer (or, degraded, malformed / null / off by one day)."""
        found = find_date(request.user_text)
        value = found.isoformat() if found else None
        if degrade:
            mode = request.rng("date-wrong").randrange(3)
            if mode == 0:
                return '{"date": "' + (value or "unknown") + '"'
            if mode == 1 and value is not None:
                return json.dumps({"date": None})
            shifted = (found or date(2000, 1, 1)) + timedelta(days=1)
            return json.dumps({"date": shifted.isoformat()})
        return json.dumps({"date": value})


class VerdictResponder:
    """Answers ``{"verdict": ..., "reason": ...}`` from a ``Verdict: a|b|c`` line."""

    name = "verdict"

    @staticmethod
    def options(request: ResponderRequest) -> list[str]:
        """Options declared by the system prompt (empty when there is no marker)."""
        found = _VERDICT.search(request.system)
        if found is None:
            return []
        return [option.strip() for option in found["options"].split("|") if option.strip()]

    def matches(self, request: ResponderRequest) -> bool:
        """A ``Verdict:`` line with at least two options."""
        return len(self.options(request)) >= 2

    def respond(self, request: ResponderRequest, *, degrade: bool) -> str:
        """The JSON verdict (or, degraded, malformed JSON / an option that was not offered)."""
        options = self.options(request)
        text = request.user_text
        named = next((option for option in options if _mentions(text, option)), None)
        if named is not None:
            verdict, reason = named, f"The submission explicitly points to '{named}'."
        else:
            verdict = options[request.rng("verdict-fallback").randrange(len(options))]
            reason = "No decisive signal in the submission; applied the default policy."
        if degrade:
            if request.rng("verdict-wrong").randrange(2) == 0:
                return json.dumps({"verdict": verdict, "reason": reason})[:-9]
            return json.dumps({"verdict": "undecided", "reason": reason})
        return json.dumps({"verdict": verdict, "reason": reason})


def builtin_responders() -> list[ClassifierResponder | DateResponder | VerdictResponder | ScoreResponder]:
    """The built-in marker responders, in matching order (the rerank scorer: nightbatch.emulator.score_responder)."""
    return [ClassifierResponder(), DateResponder(), VerdictResponder(), ScoreResponder()]
