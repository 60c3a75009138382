"""The ``when`` language: what it accepts, what it refuses (with where), and that nothing is evaluated as Python."""

from __future__ import annotations

import re

import pytest

from nightbatch.errors import InputError
from nightbatch.pipeline.condition import ConditionError, parse_condition
from nightbatch.pipeline.payload import build_payload
from nightbatch.pipeline.spec import RerankSpec, StageSpec, parse_window


@pytest.mark.parametrize(
    ("source", "output", "payload", "expected"),
    [
        ('output == "billing"', "billing", {}, True),
        ('output in ["billing", "account"]', "account", {}, True),
        ("output in ['billing', 'account']", "bug", {}, False),
        ('output not in ["bug"]', "billing", {}, True),
        ('output.verdict != "approve"', {"verdict": "reject"}, {}, True),
        ("output.score >= 0.5 and payload.lang == 'en'", {"score": 0.7}, {"lang": "en"}, True),
        ("output.score >= 0.5 and payload.lang == 'en'", {"score": 0.7}, {"lang": "de"}, False),
        ("output.score > 1 or payload.vip", {"score": 0}, {"vip": True}, True),
        ("not (output.flags.spam == true)", {"flags": {"spam": False}}, {}, True),
        ("output.date != null", {"date": None}, {}, False),
        ("output.missing.deeper == null", {}, {}, True),
        ("output.items.0 == 'a'", {"items": ["a"]}, {}, True),
        ("output < 3", "text", {}, False),  # values that cannot be ordered never satisfy an ordering
        ("'bill' in output", "billing", {}, True),
        ("output", "", {}, False),
        ("output", [1], {}, True),
        ("-1 < output", 0, {}, True),
    ],
)
def test_conditions_evaluate_on_the_upstream_result(source, output, payload, expected):
    assert parse_condition(source).holds(output, payload) is expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("output = 1", "unexpected character '=' at 8"),
        ("__import__('os')", "unknown name '__import__' at 1"),
        ("output.__class__ == 1", None),  # a field name, looked up in the data: never an attribute
        ("output ==", "expected a value at 10"),
        ("(output == 1", "expected ')' at 13"),
        ("output == 1 1", "unexpected '1' at 13"),
        ("", "the condition is empty"),
        ("len(output) > 1", "unknown name 'len' at 1"),
    ],
)
def test_bad_conditions_are_refused_saying_where(source, message):
    if message is None:
        assert parse_condition(source).holds({"__class__": 1}, {}) is True
        assert parse_condition(source).holds("text", {}) is False
        return
    with pytest.raises(ConditionError, match=re.escape(message)):
        parse_condition(source)


def test_payloads_are_built_from_the_upstream_payload_and_output():
    default = StageSpec(after="a")
    assert build_payload(default, {"text": "t"}, "billing") == {"text": "t", "upstream": "billing"}
    mapped = StageSpec(after="a", inputs={"text": "payload.text", "label": "output", "date": "output.date"})
    assert build_payload(mapped, {"text": "t"}, "billing") == {"text": "t", "label": "billing", "date": None}
    rerank = StageSpec(after="a", inputs={"q": "payload.q"}, rerank=RerankSpec(top_k=2))
    payload = {"q": "?", "documents": ["d0", "d1", "d2", "d3"]}
    built = build_payload(rerank, payload, {"scores": [0.1, 0.9, 0.5, 0.9]})
    assert built == {"q": "?", "documents": ["d1", "d3"]}  # best first; a tie keeps the original order
    with pytest.raises(InputError, match=r"one score per document \(4\), got 3"):
        build_payload(rerank, payload, {"scores": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"expected `payload\.<field>`"):
        StageSpec(after="a", inputs={"x": "os.environ"})


def test_reuse_windows():
    assert parse_window("7d").total_seconds() == 7 * 86400
    assert parse_window("12h").total_seconds() == 12 * 3600
    for bad in ("7", "0d", "1y", "d7"):
        with pytest.raises(ValueError, match="not a window"):
            parse_window(bad)
