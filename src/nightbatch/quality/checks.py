"""Checks on a task's output, declared per task type, each returning pass/fail and a reason.

``[task_types.<name>.checks]`` may declare any of::

    labels = ["billing", "bug"]          # the (stripped) text output must be one of these
    regex = "^\\d{4}-\\d{2}-\\d{2}$"      # the text output must match (re.fullmatch)
    min_length = 1                        # bounds on the text output's length, in characters
    max_length = 200
    json_schema = { type = "object", required = ["date"] }   # JSON outputs, validated by jsonschema
    callable = "mypackage.checks:is_polite"  # f(output, payload) -> bool | (bool, reason)
    reference_field = "expected_label"    # payload field holding the right answer (calibration only)

A type with ``output = "json"`` also has its ``output_schema`` checked. The first failing check decides.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nightbatch.errors import ConfigError

__all__ = ["CheckResult", "CheckSpec", "agrees", "run_checks"]


class CheckSpec(BaseModel):
    """The checks one task type declares (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    labels: tuple[str, ...] | None = None
    regex: str | None = None
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=0)
    json_schema: dict[str, Any] | None = None
    callable: str | None = Field(None, description="`module:function`, called as f(output, payload).")
    reference_field: str | None = Field(None, description="Payload field with the expected output.")

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value

    @field_validator("json_schema")
    @classmethod
    def _schema_is_valid(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                jsonschema.Draft202012Validator.check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"invalid JSON schema: {exc.message}") from exc
        return value

    @field_validator("callable")
    @classmethod
    def _callable_shape(cls, value: str | None) -> str | None:
        if value is not None and (":" not in value or value.startswith(":") or value.endswith(":")):
            raise ValueError(f"callable must look like 'module:function', got {value!r}")
        return value

    @property
    def is_empty(self) -> bool:
        return not any((self.labels, self.regex, self.min_length is not None, self.max_length is not None,
                        self.json_schema, self.callable))  # fmt: skip


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    reason: str | None = None


PASSED = CheckResult(True)


@lru_cache(maxsize=64)
def _load_callable(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"check callable {path!r} cannot be imported: {exc}") from exc
    if not callable(target):
        raise ConfigError(f"check callable {path!r} is not callable")
    return target  # type: ignore[no-any-return]


def _text(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)


def run_checks(
    spec: CheckSpec, output: Any, payload: dict[str, Any], *, output_schema: dict[str, Any] | None = None
) -> CheckResult:
    """Run every declared check on ``output``; the first failure decides."""
    text = _text(output).strip()
    if spec.labels is not None and text not in spec.labels:
        return CheckResult(False, f"label {text[:60]!r} is not one of {', '.join(spec.labels)}")
    if spec.regex is not None and not re.fullmatch(spec.regex, text):
        return CheckResult(False, f"output {text[:60]!r} does not match {spec.regex!r}")
    if spec.min_length is not None and len(text) < spec.min_length:
        return CheckResult(False, f"output is {len(text)} characters, under {spec.min_length}")
    if spec.max_length is not None and len(text) > spec.max_length:
        return CheckResult(False, f"output is {len(text)} characters, over {spec.max_length}")
    for schema in (output_schema, spec.json_schema):
        if schema is None:
            continue
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(output))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "output"
            return CheckResult(False, f"{where}: {error.message}")
    if spec.callable is not None:
        verdict = _load_callable(spec.callable)(output, payload)
        passed, reason = verdict if isinstance(verdict, tuple) else (bool(verdict), None)
        if not passed:
            return CheckResult(False, reason or f"{spec.callable} rejected the output")
    return PASSED


def agrees(output: Any, reference: Any) -> bool:
    """Whether an output matches a reference answer (labels and texts compared stripped, JSON as values)."""
    if isinstance(output, dict) and len(output) == 1 and not isinstance(reference, dict):
        (output,) = output.values()  # {"date": "2024-01-02"} against a bare "2024-01-02"
    if isinstance(output, str) and isinstance(reference, str):
        return output.strip().casefold() == reference.strip().casefold()
    return bool(output == reference)
