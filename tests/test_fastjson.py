"""fastjson: orjson's speed, the standard library's acceptance."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nightbatch import fastjson

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(value=json_values)
def test_what_it_writes_the_standard_library_reads_back(value: object):
    line = fastjson.dumps_line(value)
    assert line.endswith(b"\n")
    assert b"\n" not in line[:-1]
    assert json.loads(line) == value
    assert fastjson.loads(line) == value


def test_compact_utf8_like_json_dumps_without_ascii_escapes():
    value = {"name": "Zoë", "n": [1, 2], "ok": True}
    assert fastjson.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def test_a_lone_surrogate_is_read_and_written_not_refused():
    assert fastjson.loads(b'{"text":"\\ud800 half an emoji"}') == {"text": "\ud800 half an emoji"}
    line = fastjson.dumps_line({"text": "\ud800"})
    assert json.loads(line) == {"text": "\ud800"}


def test_integers_beyond_64_bits_are_written_exactly():
    assert json.loads(fastjson.dumps({"n": 2**70})) == {"n": 2**70}


@pytest.mark.parametrize("text", [b"", b"{", b'{"a":1', b"nope", b'{"a":1}}'])
def test_what_is_not_json_is_a_value_error(text: bytes):
    with pytest.raises(ValueError, match=r"."):  # json's or orjson's message, naming the position
        fastjson.loads(text)
