"""The ``when`` conditions of pipeline stages: a small expression language, parsed, never ``eval``-ed.

A downstream stage runs for an upstream task only when its condition holds on the upstream result. The
language is deliberately tiny, so that a condition can be read (and checked at config load) at a glance::

    output == "billing"                          # the upstream output (a text label) equals a string
    output in ["billing", "account"]             # ... is one of a list
    output.verdict != "approve"                  # a field of a JSON output
    output.score >= 0.5 and payload.lang == "en" # numbers, the upstream payload, and / or / not
    not (output.flags.spam == true)              # nested fields, true / false / null, parentheses

Grammar (whitespace between tokens is free; ``#`` is not a comment)::

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | compare
    compare    := value (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") value)?
    value      := path | string | number | "true" | "false" | "null" | list | "(" condition ")"
    path       := ("output" | "payload") ("." name | "." digits)*
    list       := "[" (value ("," value)*)? "]"

``output`` is the upstream task's parsed output (text, or the JSON value of a ``output = "json"`` type);
``payload`` is its payload. A path that does not exist is ``null``; a comparison of values that cannot be
ordered (a string with a number, anything with ``null``) is false; a bare value is true unless it is
``null``, ``false``, ``0``, an empty string or an empty list. ``in`` against a string is substring
containment. Strings take single or double quotes with backslash escapes for the quote and the backslash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["Condition", "ConditionError", "lookup", "parse_condition"]


class ConditionError(ValueError):
    """A condition that does not parse; the message names the position and what was expected."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_ROOTS = ("output", "payload")
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")


@dataclass(frozen=True)
class _Token:
    kind: str  # number | string | op | word | end
    text: str
    at: int


def _tokens(source: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(source):
        if source[position:].strip() == "":
            break
        match = _TOKEN.match(source, position)
        if match is None or match.end() == position:
            rest = source[position:]
            at = position + len(rest) - len(rest.lstrip())
            raise ConditionError(f"unexpected character {source[at]!r} at {at + 1}")
        kind = match.lastgroup or "op"
        found.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    found.append(_Token("end", "", len(source)))
    return found


# An expression node is a tuple: ("path", root, (parts...)) | ("lit", value) | ("list", (nodes...)) |
# ("not", node) | ("and", a, b) | ("or", a, b) | ("cmp", op, a, b).
Node = tuple[Any, ...]


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokens(source)
        self.index = 0

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text or token.kind not in ("op", "word"):
            raise ConditionError(f"expected {text!r} at {token.at + 1}, found {token.text or 'the end'!r}")

    def parse(self) -> Node:
        node = self.or_()
        token = self.peek()
        if token.kind != "end":
            raise ConditionError(f"unexpected {token.text!r} at {token.at + 1}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek().kind == "word" and self.peek().text == "or":
            self.take()
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.peek().kind == "word" and self.peek().text == "and":
            self.take()
            node = ("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.peek().kind == "word" and self.peek().text == "not":
            self.take()
            return ("not", self.not_())
        return self.compare()

    def compare(self) -> Node:
        left = self.value()
        token = self.peek()
        op: str | None = None
        if token.kind == "op" and token.text in _COMPARISONS:
            op = token.text
        elif token.kind == "word" and token.text == "in":
            op = "in"
        elif token.kind == "word" and token.text == "not" and self.peek(1).text == "in":
            self.take()
            op = "not in"
        if op is None:
            return left
        self.take()
        return ("cmp", op, left, self.value())

    def value(self) -> Node:
        token = self.take()
        if token.kind == "number":
            return ("lit", float(token.text) if "." in token.text else int(token.text))
        if token.kind == "string":
            return ("lit", re.sub(r"\\(.)", r"\1", token.text[1:-1]))
        if token.kind == "word" and token.text in ("true", "false", "null"):
            return ("lit", {"true": True, "false": False, "null": None}[token.text])
        if token.kind == "word" and token.text in _ROOTS:
            parts: list[str] = []
            while self.peek().text == "." and self.peek().kind == "op":
                self.take()
                part = self.take()
                if not (part.kind == "word" or (part.kind == "number" and part.text.isdigit())):
                    raise ConditionError(f"expected a field name after '.' at {part.at + 1}")
                parts.append(part.text)
            return ("path", token.text, tuple(parts))
        if token.kind == "op" and token.text == "(":
            inner = self.or_()
            self.expect(")")
            return inner
        if token.kind == "op" and token.text == "[":
            items: list[Node] = []
            if self.peek().text != "]":
                items.append(self.value())
                while self.peek().text == ",":
                    self.take()
                    items.append(self.value())
            self.expect("]")
            return ("list", tuple(items))
        if token.kind == "word":
            raise ConditionError(
                f"unknown name {token.text!r} at {token.at + 1}: a path starts with `output` or `payload`"
            )
        raise ConditionError(f"expected a value at {token.at + 1}, found {token.text or 'the end'!r}")


def lookup(value: Any, parts: tuple[str, ...]) -> Any:
    """``value`` followed down ``parts`` (object keys, list indexes); None where the path leads nowhere."""
    for part in parts:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "", []) and value != {}


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op in ("in", "not in"):
        if isinstance(right, list) or (isinstance(right, str) and isinstance(left, str)):
            found = left in right
        else:
            return False
        return found if op == "in" else not found
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    if not numbers and not (isinstance(left, str) and isinstance(right, str)):
        return False  # values that cannot be ordered never satisfy an ordering
    return bool({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op])


def _evaluate(node: Node, scope: dict[str, Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "path":
        return lookup(scope.get(node[1]), node[2])
    if kind == "list":
        return [_evaluate(item, scope) for item in node[1]]
    if kind == "not":
        return not _truthy(_evaluate(node[1], scope))
    if kind == "and":
        return _truthy(_evaluate(node[1], scope)) and _truthy(_evaluate(node[2], scope))
    if kind == "or":
        return _truthy(_evaluate(node[1], scope)) or _truthy(_evaluate(node[2], scope))
    return _compare(node[1], _evaluate(node[2], scope), _evaluate(node[3], scope))


@dataclass(frozen=True)
class Condition:
    """A parsed condition; :meth:`holds` evaluates it on one upstream result."""

    source: str
    tree: Node

    def holds(self, output: Any, payload: dict[str, Any]) -> bool:
        """Whether the condition is true for an upstream task's ``output`` and ``payload``."""
        return _truthy(_evaluate(self.tree, {"output": output, "payload": payload}))


@lru_cache(maxsize=256)
def parse_condition(source: str) -> Condition:
    """Parse ``source`` (see the module docstring), or raise :class:`ConditionError` saying where it fails."""
    if not source.strip():
        raise ConditionError("the condition is empty")
    return Condition(source, _Parser(source).parse())
