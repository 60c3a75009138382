"""Task types: what each kind of task sends, to which model, and how it is cached and trimmed.

Task types are declared in TOML, in the ``[task_types.<name>]`` tables of ``nightbatch.toml`` (or of
the file / every ``*.toml`` in the folder named by ``NIGHTBATCH_TASK_CONFIG``). Tools live in a shared
``[tools.<name>]`` library so that each type sends only the tools it lists. Prompt files and shared
documents are paths relative to the file that names them.

Every problem is reported as one :class:`ConfigError` naming the file, the type and the field, before
any task is claimed. A model the catalog does not know is refused with the known ids listed; a dated id
(``claude-haiku-4-5-20251001``) is accepted as the entry it names. Thinking, effort, structured outputs and
``inference_geo`` are per type (see :mod:`nightbatch.thinking`); a type routed to a model that thinks by
default without saying what it wants loads with a warning (:attr:`TaskTypeRegistry.warnings`, also logged).
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nightbatch.catalog import canonical_model, load_catalog, model_info
from nightbatch.errors import ConfigError
from nightbatch.pipeline.graph import check_stage_graph
from nightbatch.pipeline.spec import RerankSpec, StageSpec, parse_window
from nightbatch.pricing import load_price_table
from nightbatch.quality.checks import CheckSpec
from nightbatch.thinking import Effort, ThinkingBudget, ThinkingChoice, request_settings, thinking_warning

OnDeadline = Literal["realtime", "next_run", "fail"]
"""What happens to a task its batch will not finish by the deadline (see :mod:`nightbatch.deadline`)."""
log = logging.getLogger(__name__)

__all__ = [
    "CachePolicy",
    "ContextPolicy",
    "OnDeadline",
    "RoutingPolicy",
    "TaskType",
    "TaskTypeRegistry",
    "load_task_types",
    "thinking_warnings",
]


class ContextPolicy(BaseModel):
    """What to trim from a task before it is sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last_turns: int | None = Field(
        None, ge=0, description="Of a `conversation` payload, keep the first turn plus the last N."
    )
    max_documents: int | None = Field(None, ge=0, description="Of a `documents` payload list, keep the first K.")


class CachePolicy(BaseModel):
    """How the stable prefix is cached. ``auto`` lets the break-even arithmetic choose the TTL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["auto", "off", "5m", "1h"] = "auto"
    pad_to_minimum: bool = Field(
        False, description="Pad a prefix below the model's minimum cacheable length up to it (a neutral block)."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_priming(cls, data: Any) -> Any:
        if isinstance(data, dict) and "prime" in data:
            raise ValueError(
                "cache.prime was removed: a real-time call does not warm the batch cache. nightbatch sends a "
                "one-task pilot batch instead when caching pays (see docs/reliability.md, 'Batch caching')"
            )
        return data


class RoutingPolicy(BaseModel):
    """How a type's route is measured: calibration candidates and bar, and shadow sampling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float | None = Field(None, ge=0, le=1, description="Pass rate a model must reach to be routed to.")
    candidates: tuple[str, ...] = Field((), description="Models to calibrate; default: the escalation ladder.")
    shadow_fraction: float = Field(0.0, ge=0, le=1, description="Share of tasks also sent to the next rung up.")


class TaskType(BaseModel):
    """One task type, fully resolved (files read, tools looked up)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model: str
    max_tokens: int = Field(ge=1)
    system: str = ""
    documents: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    template: str = "{text}"
    output: Literal["text", "json"] = "text"
    output_schema: dict[str, Any] | None = None
    context: ContextPolicy = ContextPolicy()
    cache: CachePolicy = CachePolicy()
    escalation: tuple[str, ...] = ()
    checks: CheckSpec = CheckSpec()
    routing: RoutingPolicy = RoutingPolicy()
    on_deadline: OnDeadline = "next_run"
    thinking: ThinkingChoice | None = None
    effort: Effort | None = None
    structured: bool = False
    inference_geo: Literal["us", "global"] | None = None
    # -- pipelines, de-duplication, reuse (nightbatch.pipeline.spec) --
    stage: StageSpec | None = None
    dedupe: bool = True
    reuse_window_seconds: int | None = None

    @field_validator("escalation")
    @classmethod
    def _ladder_is_known(cls, ladder: tuple[str, ...]) -> tuple[str, ...]:
        catalog = load_catalog()
        unknown = [m for m in ladder if canonical_model(m) not in catalog]
        if unknown:
            raise ValueError(
                f"unknown model(s) in escalation ladder: {', '.join(unknown)} (known: {', '.join(catalog)})"
            )
        return ladder

    def settings_for(self, model: str) -> dict[str, Any]:
        """The thinking / output_config / inference_geo params of this type's requests on ``model``.

        ``output_config.format`` is sent only when the type asks for it (``structured``) and ``model``
        supports it: on a rung that does not, the result is validated against the schema all the same.
        """
        structured = (
            self.structured and self.output_schema is not None and model_info(model).supports_structured_outputs
        )
        return request_settings(
            thinking=self.thinking,
            effort=self.effort,
            output_format=self.output_schema if structured else None,
            inference_geo=self.inference_geo,
        )


class _TaskTypeFile(BaseModel):
    """The raw shape of one ``[task_types.<name>]`` table, before files and tools are resolved."""

    model_config = ConfigDict(extra="forbid")

    model: str
    max_tokens: int = Field(ge=1)
    system: str | None = None
    system_file: str | None = None
    documents: list[str] = Field(default_factory=list, description="Files of shared documents (cached prefix).")
    tools: list[str] = Field(default_factory=list, description="Names from the [tools] library.")
    template: str = "{text}"
    output: Literal["text", "json"] = "text"
    output_schema: dict[str, Any] | None = None
    context: ContextPolicy = ContextPolicy()
    cache: CachePolicy = CachePolicy()
    escalation: list[str] = Field(default_factory=list)
    checks: CheckSpec = CheckSpec()
    routing: RoutingPolicy = RoutingPolicy()
    on_deadline: OnDeadline = Field(
        "next_run",
        description="When a batch will miss the deadline: send the rest real-time, leave it queued, or fail it.",
    )
    thinking: Literal["disabled", "adaptive"] | ThinkingBudget | None = Field(
        None, description='"disabled", "adaptive" or { budget_tokens = N }; unset = the model\'s default.'
    )
    effort: Effort | None = Field(None, description="output_config.effort: low, medium, high, xhigh or max.")
    structured: bool = Field(False, description="Send output_schema as output_config.format (structured outputs).")
    inference_geo: Literal["us", "global"] | None = Field(None, description='"us": US-only inference, 1.1x prices.')
    # -- pipelines, de-duplication, reuse (nightbatch.pipeline.spec documents these) --
    after: str | None = Field(None, description="The task type whose succeeded results this type runs on.")
    when: str | None = Field(None, description="A condition on the upstream result (nightbatch.pipeline.condition).")
    inputs: dict[str, str] | None = Field(None, description="This type's payload fields, from the upstream task.")
    rerank: RerankSpec | None = Field(None, description="Keep the top_k documents the upstream type scored best.")
    dedupe: bool = Field(True, description="Send identical requests of one submit once.")
    reuse_responses: str | None = Field(None, description='Serve identical requests answered within e.g. "7d".')


class TaskTypeRegistry:
    """The task types of a deployment, by name. ``warnings``: what loading them found worth saying."""

    def __init__(
        self, types: Iterable[TaskType], sources: dict[str, Path] | None = None, warnings: list[str] | None = None
    ) -> None:
        self._types = {t.name: t for t in types}
        self.sources = sources or {}
        self.warnings = list(warnings or [])

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Any:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)

    def names(self) -> list[str]:
        return sorted(self._types)

    def get(self, name: str) -> TaskType:
        """The task type called ``name``, or a :class:`ConfigError` listing the known ones."""
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown task type {name!r} (configured: {known})") from None


def _config_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.glob("*.toml"))
    if path.exists():
        return [path]
    raise ConfigError(f"task-type config {path} does not exist")


def _read_text(base: Path, relative: str, where: str) -> str:
    try:
        target = (base / relative).resolve()
        return target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {base / relative}: {exc.strerror}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read {relative!r}: {exc}") from exc


def _resolve(name: str, raw: _TaskTypeFile, tools: dict[str, dict[str, Any]], file: Path) -> TaskType:
    where = f"{file}: task type {name!r}"
    if raw.system is not None and raw.system_file is not None:
        raise ConfigError(f"{where}: give either `system` or `system_file`, not both")
    system = raw.system if raw.system is not None else ""
    if raw.system_file is not None:
        system = _read_text(file.parent, raw.system_file, f"{where}: field `system_file`")
    documents = tuple(_read_text(file.parent, d, f"{where}: field `documents`") for d in raw.documents)
    missing = [t for t in raw.tools if t not in tools]
    if missing:
        raise ConfigError(f"{where}: field `tools`: not in the [tools] library: {', '.join(missing)}")
    catalog = load_catalog()
    for field_name, models in (("model", [raw.model]), ("routing.candidates", list(raw.routing.candidates))):
        for model in models:
            if canonical_model(model) not in catalog:
                raise ConfigError(
                    f"{where}: field `{field_name}`: unknown model {model!r} (known: {', '.join(catalog)})"
                )
    if raw.structured and raw.output_schema is None:
        raise ConfigError(f"{where}: field `structured`: needs an `output_schema` to send as output_config.format")
    if isinstance(raw.thinking, ThinkingBudget) and raw.thinking.budget_tokens >= raw.max_tokens:
        raise ConfigError(
            f"{where}: field `thinking`: budget_tokens ({raw.thinking.budget_tokens}) must be below max_tokens "
            f"({raw.max_tokens}): thinking counts toward max_tokens"
        )
    stage, reuse_seconds = _pipeline_fields(raw, where)
    try:
        return TaskType(
            name=name,
            model=raw.model,
            max_tokens=raw.max_tokens,
            system=system,
            documents=documents,
            tools=tuple(tools[t] for t in raw.tools),
            template=raw.template,
            output=raw.output,
            output_schema=raw.output_schema,
            context=raw.context,
            cache=raw.cache,
            escalation=tuple(raw.escalation),
            checks=raw.checks,
            routing=raw.routing,
            on_deadline=raw.on_deadline,
            thinking=raw.thinking,
            effort=raw.effort,
            structured=raw.structured,
            inference_geo=raw.inference_geo,
            stage=stage,
            dedupe=raw.dedupe,
            reuse_window_seconds=reuse_seconds,
        )
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc)}") from exc


def _pipeline_fields(raw: _TaskTypeFile, where: str) -> tuple[StageSpec | None, int | None]:
    """The stage a type declares (``after`` and what goes with it) and its reuse window, checked."""
    if raw.after is None and (raw.when or raw.inputs or raw.rerank):
        raise ConfigError(f"{where}: `when`, `inputs` and `rerank` need `after` (the upstream task type)")
    try:
        stage = None if raw.after is None else StageSpec(after=raw.after, when=raw.when, inputs=raw.inputs,
                                                          rerank=raw.rerank)  # fmt: skip
        window = None if raw.reuse_responses is None else parse_window(raw.reuse_responses)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc)}") from exc
    except ValueError as exc:
        raise ConfigError(f"{where}: field `reuse_responses`: {exc}") from exc
    return stage, None if window is None else int(window.total_seconds())


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(table)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"field `{field}`: {first['msg']}{more}"


def _tables(data: dict[str, Any], name: str, file: Path) -> dict[str, Any]:
    """``data[name]``, which must be a table of tables (``[name.<entry>]``)."""
    section = data.get(name, {})
    if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
        raise ConfigError(f"{file}: `{name}` must be a table of tables, like [{name}.<name>]")
    return section


def _tool_library(data: dict[str, Any], file: Path) -> dict[str, dict[str, Any]]:
    library: dict[str, dict[str, Any]] = {}
    for name, tool in _tables(data, "tools", file).items():
        if not isinstance(tool, dict) or "input_schema" not in tool:
            raise ConfigError(f"{file}: tool {name!r}: needs at least `input_schema` (and usually `description`)")
        library[name] = {"name": name, **tool}
    return library


def load_task_types(path: Path) -> TaskTypeRegistry:
    """Read every task type from ``path`` (a TOML file, or a folder of them)."""
    files = _config_files(path)
    parsed: list[tuple[Path, dict[str, Any]]] = []
    tools: dict[str, dict[str, Any]] = {}
    for file in files:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{file}: cannot parse: {exc}") from exc
        parsed.append((file, data))
        tools.update(_tool_library(data, file))
    types: list[TaskType] = []
    sources: dict[str, Path] = {}
    for file, data in parsed:
        for name, table in _tables(data, "task_types", file).items():
            if name in sources:
                raise ConfigError(f"{file}: task type {name!r} is also defined in {sources[name]}")
            try:
                raw = _TaskTypeFile.model_validate(table)
            except ValidationError as exc:
                raise ConfigError(f"{file}: task type {name!r}: {_describe(exc)}") from exc
            types.append(_resolve(name, raw, tools, file))
            sources[name] = file
    check_stage_graph(types, sources)  # an unknown `after` or a cycle is a config error
    warnings = [w for t in types for w in thinking_warnings(t, sources[t.name])]
    for warning in warnings:
        log.warning("%s", warning)
    return TaskTypeRegistry(types, sources, warnings)


def thinking_warnings(task_type: TaskType, file: Path | None = None) -> list[str]:
    """A warning per model the type routes to (its model, its ladder) that thinks unless told otherwise.

    Only when the type does not say what it wants (``thinking`` unset): thinking is billed as output, so
    leaving the choice to the model's default is a cost decision nobody made.
    """
    if task_type.thinking is not None:
        return []
    prices = load_price_table()  # the packaged prices: a load-time estimate only
    found: list[str] = []
    for model in dict.fromkeys((task_type.model, *task_type.escalation)):
        info = model_info(model)
        if not info.thinks_by_default:
            continue
        output_price = prices.price(model).output if prices.knows(model) else None
        where = f"{file}: " if file is not None else ""
        found.append(where + thinking_warning(task_type.name, info, task_type.max_tokens, output_price))
    return found
