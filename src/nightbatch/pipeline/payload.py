"""Building a downstream task's payload from its upstream task's payload and parsed output.

See :mod:`nightbatch.pipeline.spec` for the configuration. A payload that cannot be built (a rerank whose
scores do not match the documents) raises :class:`~nightbatch.errors.InputError`; the downstream task is
then still enqueued, with the reason, so it fails visibly at submit instead of silently not existing.
"""

from __future__ import annotations

from typing import Any

from nightbatch.errors import InputError
from nightbatch.pipeline.condition import lookup
from nightbatch.pipeline.spec import RerankSpec, StageSpec

__all__ = ["build_payload", "top_k"]


def _path(value: Any, dotted: str) -> Any:
    return lookup(value, tuple(dotted.split(".")))


def _source(source: str, payload: dict[str, Any], output: Any) -> Any:
    root, _, rest = source.partition(".")
    value = payload if root == "payload" else output
    return _path(value, rest) if rest else value


def top_k(spec: RerankSpec, payload: dict[str, Any], output: Any) -> list[Any]:
    """The ``top_k`` documents of ``payload`` the upstream ``output`` scored best, best first (ties: original order)."""
    documents = _path(payload, spec.documents)
    scores = _path(output, spec.scores)
    if not isinstance(documents, list):
        raise InputError(f"rerank: the upstream payload has no list `{spec.documents}`")
    if not isinstance(scores, list) or len(scores) != len(documents):
        got = len(scores) if isinstance(scores, list) else type(scores).__name__
        raise InputError(f"rerank: the upstream output's `{spec.scores}` must hold one score per document "
                         f"({len(documents)}), got {got}")  # fmt: skip
    if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in scores):
        raise InputError(f"rerank: the upstream output's `{spec.scores}` must be numbers")
    order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))
    return [documents[i] for i in order[: spec.top_k]]


def build_payload(spec: StageSpec, payload: dict[str, Any], output: Any) -> dict[str, Any]:
    """The downstream payload: ``inputs`` (or the upstream payload plus ``upstream``), reranked if asked."""
    if spec.inputs is None:
        built: dict[str, Any] = {**payload, "upstream": output}
    else:
        built = {name: _source(source, payload, output) for name, source in spec.inputs.items()}
    if spec.rerank is not None:
        built[spec.rerank.documents.rsplit(".", 1)[-1]] = top_k(spec.rerank, payload, output)
    return built
