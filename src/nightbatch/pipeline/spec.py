"""How a task type declares its place in a pipeline, and its de-duplication and response reuse.

In ``nightbatch.toml``, on a task type (all optional)::

    after = "ticket_triage"                       # runs on the succeeded results of this type
    when = 'output in ["billing", "account"]'     # only for those (nightbatch.pipeline.condition)
    inputs = { text = "payload.text", label = "output" }   # its payload, built from the upstream task
    rerank = { top_k = 3 }                        # the upstream type scored `documents`: keep the best K
    dedupe = true                                 # identical requests in one submit are sent once
    reuse_responses = "7d"                        # serve an identical request answered within 7 days

Without ``inputs`` the downstream payload is the upstream payload plus ``upstream`` (the parsed output).
``inputs`` maps each downstream field to ``payload.<path>``, ``output`` or ``output.<path>`` of the
upstream task (a missing path gives ``null``). ``rerank`` (see :func:`nightbatch.pipeline.payload.top_k`)
reads the upstream output's ``scores`` (one number per document) and keeps the ``top_k`` best-scored
entries of the upstream payload's ``documents``, best first.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nightbatch.pipeline.condition import ConditionError, parse_condition

__all__ = ["RerankSpec", "StageSpec", "parse_window"]

_WINDOW = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SOURCE = re.compile(r"^(payload|output)(\.[A-Za-z0-9_]+)*$")


def parse_window(text: str) -> timedelta:
    """``"7d"`` -> 7 days (units m, h, d, w); a :class:`ValueError` names the accepted form."""
    match = _WINDOW.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a window like '12h', '7d' or '2w' (units m, h, d, w; above zero)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class RerankSpec(BaseModel):
    """The built-in rerank pattern: the upstream type scored the candidate documents; keep the best ``top_k``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = Field(ge=1, description="How many of the best-scored documents the downstream task receives.")
    documents: str = Field("documents", description="The upstream payload's list of candidate documents.")
    scores: str = Field("scores", description="The upstream output's list of scores, one per document.")


class StageSpec(BaseModel):
    """Where a task type sits in a pipeline: its upstream type, the condition, and how its payload is built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: str
    when: str | None = None
    inputs: dict[str, str] | None = None
    rerank: RerankSpec | None = None

    @field_validator("when")
    @classmethod
    def _condition_parses(cls, when: str | None) -> str | None:
        if when is not None:
            try:
                parse_condition(when)
            except ConditionError as exc:
                raise ValueError(f"condition {when!r}: {exc}") from None
        return when

    @field_validator("inputs")
    @classmethod
    def _inputs_are_paths(cls, inputs: dict[str, str] | None) -> dict[str, str] | None:
        for name, source in (inputs or {}).items():
            if not _SOURCE.match(source):
                raise ValueError(
                    f"inputs.{name} = {source!r}: expected `payload.<field>`, `output` or `output.<field>`"
                )
        return inputs
