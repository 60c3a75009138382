"""Deterministic responders: markers, answers, quality error rates."""

from __future__ import annotations

import json

import pytest

from nightbatch.emulator.task_responders import find_date
from tests.emulator.support import HAIKU, MODEL, params

LABELS = "Classify the ticket.\nLabels: billing, bug, feature_request, account, other\nAnswer with the label only."
DATES = 'Extract the due date.\nOutput: JSON {"date": "YYYY-MM-DD" or null}'
VERDICT = "Review the refund request.\nVerdict: approve|reject|escalate"


def ask(client, system: str, user: str, model: str = MODEL) -> str:
    message = client.messages.create(**params(user, system=system, model=model, max_tokens=200))
    return message.content[0].text


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I was charged twice, please fix my billing", "billing"),
        ("The app crashes: a bug in the export", "bug"),
        ("Could you add a feature for dark mode?", "feature_request"),
        ("Please delete my account", "account"),
    ],
)
def test_classifier_picks_the_named_label(anthropic_client, text, label):
    assert ask(anthropic_client, LABELS, text) == label


def test_classifier_falls_back_to_a_declared_label(anthropic_client):
    assert ask(anthropic_client, LABELS, "Hello, nothing specific here") in {
        "billing",
        "bug",
        "feature_request",
        "account",
        "other",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pay by 2026-03-05 please", "2026-03-05"),
        ("Due on March 5, 2026.", "2026-03-05"),
        ("Due 5 March 2026", "2026-03-05"),
        ("deadline 2026/3/5", "2026-03-05"),
        ("Fällig am 5.3.2026", "2026-03-05"),
        ("No date at all", None),
        ("Invalid 2026-02-30 then Sept 1 2026", "2026-09-01"),
    ],
)
def test_date_extractor(anthropic_client, text, expected):
    assert json.loads(ask(anthropic_client, DATES, text)) == {"date": expected}


def test_find_date_takes_the_first_date_in_the_text():
    assert str(find_date("from 1 May 2026 to 2026-06-01")) == "2026-05-01"


def test_verdict_responder(anthropic_client):
    answer = json.loads(ask(anthropic_client, VERDICT, "Customer asks us to reject the duplicate claim"))
    assert answer["verdict"] == "reject"
    assert answer["reason"]
    fallback = json.loads(ask(anthropic_client, VERDICT, "A refund for order 77"))
    assert fallback["verdict"] in {"approve", "reject", "escalate"}


def test_quality_error_rate_per_tier_degrades_deterministically(anthropic_client, emulator):
    emulator.configure(quality_error_rates={1: 1.0})  # Haiku is tier 1, Opus tier 3
    assert ask(anthropic_client, LABELS, "my billing is wrong", model=HAIKU) != "billing"
    assert ask(anthropic_client, LABELS, "my billing is wrong", model=MODEL) == "billing"
    degraded = ask(anthropic_client, DATES, "due 2026-03-05", model=HAIKU)
    assert degraded != json.dumps({"date": "2026-03-05"})
    verdict = ask(anthropic_client, VERDICT, "please approve", model=HAIKU)
    try:
        decoded = json.loads(verdict)
    except json.JSONDecodeError:
        decoded = None  # malformed JSON is one of the degraded forms
    assert decoded is None or decoded["verdict"] not in {"approve", "reject", "escalate"}


def test_partial_error_rate_hits_about_that_share(anthropic_client, emulator):
    emulator.configure(quality_error_rates={1: 0.3})
    wrong = sum(ask(anthropic_client, LABELS, f"billing issue #{i}", model=HAIKU) != "billing" for i in range(60))
    assert 8 <= wrong <= 30


def test_custom_responder_registered_first_wins(anthropic_client, emulator):
    class Echo:
        name = "echo"

        def matches(self, request):
            return "ECHO" in request.system

        def respond(self, request, *, degrade):
            return request.user_text.upper()

    emulator.register_responder(Echo())
    assert ask(anthropic_client, "ECHO\nLabels: a, b", "shout this") == "SHOUT THIS"
    emulator.reset()
    assert ask(anthropic_client, "ECHO\nLabels: a, b", "shout this") in {"a", "b"}
