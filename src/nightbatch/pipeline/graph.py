"""The stage graph of a deployment's task types: who runs after whom, checked for unknown types and cycles.

Edges come from each type's ``after``. The graph is a forest: a type has at most one upstream type, and a
type may feed several downstream types (a classify step feeding a draft step and an escalation step).
A cycle (``a`` after ``b`` after ``a``) or an ``after`` naming a type that is not configured is a
configuration error, raised when the task types are loaded, before any task is claimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nightbatch.errors import ConfigError
from nightbatch.pipeline.spec import StageSpec

__all__ = ["StageGraph", "check_stage_graph"]


class _Staged(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def stage(self) -> StageSpec | None: ...


@dataclass(frozen=True)
class StageGraph:
    """``upstream``: type -> the type it runs after; ``downstream``: type -> the types that run after it."""

    upstream: Mapping[str, str]
    downstream: Mapping[str, tuple[str, ...]]
    specs: Mapping[str, StageSpec]

    @classmethod
    def of(cls, types: Iterable[_Staged]) -> StageGraph:
        specs = {t.name: t.stage for t in types if t.stage is not None}
        downstream: dict[str, list[str]] = {}
        for name in sorted(specs):
            downstream.setdefault(specs[name].after, []).append(name)
        return cls({n: s.after for n, s in specs.items()}, {k: tuple(v) for k, v in downstream.items()}, specs)

    def __bool__(self) -> bool:
        return bool(self.specs)

    def root(self, name: str) -> str:
        """The first stage of the pipeline ``name`` belongs to (``name`` itself when it has no upstream)."""
        seen = {name}
        while name in self.upstream:
            name = self.upstream[name]
            if name in seen:
                break
            seen.add(name)
        return name

    def depth(self) -> int:
        """The number of stages of the longest chain (1 when no type runs after another)."""
        deepest = 1
        for name in self.specs:
            chain, current = 1, name
            while current in self.upstream and chain <= len(self.specs):
                current, chain = self.upstream[current], chain + 1
            deepest = max(deepest, chain)
        return deepest

    def closure(self, names: Iterable[str]) -> list[str]:
        """``names`` and every type downstream of them: what a run started for ``names`` must also work on."""
        found: list[str] = []
        pending = list(names)
        while pending:
            name = pending.pop(0)
            if name in found:
                continue
            found.append(name)
            pending.extend(self.downstream.get(name, ()))
        return found


def check_stage_graph(types: Iterable[_Staged], sources: Mapping[str, Path] | None = None) -> StageGraph:
    """The graph of ``types``, or a :class:`ConfigError` naming the file and type of an unknown upstream or a cycle."""
    listed = list(types)
    names = {t.name for t in listed}
    sources = sources or {}
    graph = StageGraph.of(listed)

    def where(name: str) -> str:
        return f"{sources[name]}: " if name in sources else ""

    for name, upstream in graph.upstream.items():
        if upstream not in names:
            raise ConfigError(
                f"{where(name)}task type {name!r}: field `after`: {upstream!r} is not a configured task type "
                f"(configured: {', '.join(sorted(names))})"
            )
    for start in sorted(graph.upstream):
        path, current = [start], start
        while current in graph.upstream:
            current = graph.upstream[current]
            if current in path:
                cycle = " -> ".join([*path[path.index(current) :], current])
                raise ConfigError(f"{where(start)}task type {start!r}: field `after`: the stages form a cycle: {cycle}")
            path.append(current)
    return graph
