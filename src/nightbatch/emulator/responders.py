"""Who writes the emulator's replies: a chain of deterministic, pluggable responders.

A responder says whether it :meth:`~Responder.matches` a request (usually by a marker line in the
system prompt) and produces the reply text. The first match wins; :class:`DefaultResponder` answers
everything else. Same seed + same request -> same text, so result lines can be re-rendered on every
download instead of being stored.

``degrade`` asks a responder for a *wrong* answer (wrong label, malformed JSON, null); the emulator
sets it with the configured per-tier quality error rate so quality checks and escalation can be
exercised. Built-in markers are documented in ``docs/emulator.md``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from nightbatch.emulator.ids import stable_hash
from nightbatch.emulator.prompt import normalised_blocks
from nightbatch.emulator.tokenizer import canonical_json

__all__ = ["DefaultResponder", "Responder", "ResponderChain", "ResponderRequest", "build_responder_request"]


@dataclass(frozen=True, slots=True)
class ResponderRequest:
    """What a responder may look at: the conversation's text, limits and a stable digest."""

    model: str
    tier: int
    system: str
    messages: tuple[tuple[str, str], ...]  # (role, text) of user/assistant turns
    max_tokens: int
    stop_sequences: tuple[str, ...]
    digest: int
    seed: int
    # Late-2026 lineup (see nightbatch.emulator.lineup); defaults = a 4.x-style request.
    tokenizer: str = "legacy"
    thinking_mode: str = "off"  # off | adaptive | enabled (after applying the model's default)
    thinking_budget: int | None = None
    thinking_display: str | None = None
    effort: str | None = None
    output_schema: str | None = None  # canonical JSON of output_config.format.schema
    inference_geo: str = "global"

    @property
    def user_text(self) -> str:
        """Text of the last user turn ('' when there is none)."""
        for role, text in reversed(self.messages):
            if role == "user":
                return text
        return ""

    def rng(self, salt: str) -> random.Random:
        """A random generator determined by this request, the seed and ``salt``."""
        return random.Random(stable_hash(self.seed, self.digest, salt))


@runtime_checkable
class Responder(Protocol):
    """Produces reply text for the requests it matches."""

    name: str

    def matches(self, request: ResponderRequest) -> bool:
        """Whether this responder handles ``request``."""
        ...

    def respond(self, request: ResponderRequest, *, degrade: bool) -> str:
        """The reply text (untruncated; the emulator applies max_tokens and stop sequences)."""
        ...


def _block_text(block: Mapping[str, Any]) -> str:
    if block.get("type") == "text":
        return str(block.get("text", ""))
    if block.get("type") == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return content
        return "\n".join(_block_text(b) for b in normalised_blocks(content))
    return ""


def _content_text(content: object) -> str:
    return "\n".join(t for t in (_block_text(b) for b in normalised_blocks(content)) if t)


def _thinking(params: Mapping[str, Any], thinks_by_default: bool) -> tuple[str, int | None, str | None]:
    thinking = params.get("thinking")
    if not isinstance(thinking, Mapping):
        return ("adaptive" if thinks_by_default else "off"), None, None
    mode = {"enabled": "enabled", "adaptive": "adaptive"}.get(str(thinking.get("type")), "off")
    budget = thinking.get("budget_tokens") if mode == "enabled" else None
    return mode, budget if isinstance(budget, int) else None, thinking.get("display")


def build_responder_request(
    params: Mapping[str, Any],
    *,
    tier: int,
    digest: int,
    seed: int,
    intern: dict[str, str] | None = None,
    tokenizer: str = "legacy",
    thinks_by_default: bool = False,
) -> ResponderRequest:
    """Extract what responders need from validated params; ``intern`` shares equal long strings.

    ``tokenizer`` and ``thinks_by_default`` are the model's catalog facts (``ModelInfo``).
    """

    def shared(text: str) -> str:
        if intern is None or len(text) < 64:
            return text
        return intern.setdefault(text, text)

    system_parts = [_content_text(params.get("system", ""))]
    turns: list[tuple[str, str]] = []
    for message in params["messages"]:
        text = _content_text(message["content"])
        if message["role"] == "system":
            system_parts.append(text)
        else:
            turns.append((str(message["role"]), shared(text)))
    mode, budget, display = _thinking(params, thinks_by_default)
    output_config = params.get("output_config")
    output_config = output_config if isinstance(output_config, Mapping) else {}
    shape = output_config.get("format")
    schema = shared(canonical_json(shape["schema"])) if isinstance(shape, Mapping) and "schema" in shape else None
    return ResponderRequest(
        # The response's `model` is the id as sent (a dated alias stays dated). Unverified: the API docs'
        # examples echo the request's id; nothing says a dated id comes back canonical.
        model=str(params["model"]),
        tier=tier,
        system=shared("\n".join(p for p in system_parts if p)),
        messages=tuple(turns),
        max_tokens=int(params["max_tokens"]) if "max_tokens" in params else 0,
        stop_sequences=tuple(params.get("stop_sequences") or ()),
        digest=digest,
        seed=seed,
        tokenizer=tokenizer,
        thinking_mode=mode,
        thinking_budget=budget,
        thinking_display=display,
        effort=output_config.get("effort"),
        output_schema=schema,
        inference_geo=str(params.get("inference_geo") or "global"),
    )


_WORDS = [
    "the",
    "request",
    "data",
    "result",
    "model",
    "batch",
    "system",
    "value",
    "review",
    "answer",
    "context",
    "detail",
    "summary",
    "process",
    "account",
    "order",
    "record",
    "report",
    "support",
    "issue",
    "update",
    "change",
    "customer",
    "service",
    "team",
    "policy",
    "example",
    "approach",
    "option",
    "reason",
    "step",
    "plan",
    "section",
    "document",
    "message",
    "response",
    "question",
    "point",
    "case",
    "time",
    "clear",
    "simple",
    "careful",
    "specific",
    "useful",
    "relevant",
    "likely",
    "important",
    "general",
    "recent",
    "complete",
    "direct",
    "is",
    "are",
    "was",
    "can",
    "will",
    "should",
    "may",
    "could",
    "would",
    "helps",
    "shows",
    "means",
    "needs",
    "covers",
    "keeps",
    "makes",
    "gives",
    "and",
    "or",
    "but",
    "so",
    "because",
    "while",
    "when",
    "if",
    "then",
    "also",
    "therefore",
    "however",
    "first",
    "next",
    "finally",
    "overall",
]


@lru_cache(maxsize=1)
def _corpus() -> str:
    rng = random.Random("nightbatch-emulator-corpus")
    sentences = []
    for _ in range(1500):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(7, 16))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


class DefaultResponder:
    """A plausible prose reply of a natural length between ``min_tokens`` and ``max_tokens`` tokens."""

    name = "default"

    def __init__(self, min_tokens: int = 40, max_tokens: int = 400) -> None:
        self.min_tokens = min_tokens
        self.max_tokens = max(max_tokens, min_tokens)

    def matches(self, request: ResponderRequest) -> bool:
        """Matches everything."""
        return True

    def respond(self, request: ResponderRequest, *, degrade: bool) -> str:
        """A slice of a fixed prose corpus, chosen and sized by the request digest."""
        rng = request.rng(self.name)
        length = rng.randint(self.min_tokens, self.max_tokens) * 4
        corpus = _corpus()
        while len(corpus) < length * 2:
            corpus = corpus + " " + corpus
        start = corpus.find(". ", rng.randrange(len(corpus) - length - 1)) + 2
        text = corpus[start : start + length]
        cut = text.rfind(" ")
        return text[:cut] if cut > 0 else text


class ResponderChain:
    """Ordered responders; the first that matches answers, else the default."""

    def __init__(self, responders: Iterable[Responder] = (), default: Responder | None = None) -> None:
        self.responders: list[Responder] = list(responders)
        self.default: Responder = default or DefaultResponder()

    def register(self, responder: Responder, *, first: bool = True) -> None:
        """Add ``responder`` (ahead of the others unless ``first`` is False)."""
        if first:
            self.responders.insert(0, responder)
        else:
            self.responders.append(responder)

    def pick(self, request: ResponderRequest) -> Responder:
        """The responder that answers ``request``."""
        for responder in self.responders:
            if responder.matches(request):
                return responder
        return self.default

    @property
    def names(self) -> Sequence[str]:
        """Names in matching order, default last."""
        return [*(r.name for r in self.responders), self.default.name]
