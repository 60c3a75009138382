"""The layout rules of docs/architecture.md, checked on the source: read with ``ast``, nothing is imported.

(a) Only the database port (``src/nightbatch/db/``) and the migrations import SQLAlchemy, SQLModel or Alembic;
    every other module calls the named reads and transitions of ``nightbatch.db`` (engines are typed as
    ``nightbatch.db.Engine``). Any import counts, in a function or a TYPE_CHECKING block too.
(b) No import cycle between the stage packages: each top-level module or subpackage of ``nightbatch`` (submit,
    collect, queue, quality, report, build, claude, storage, deadline, emulator, cli, db, ...) is a node, and a
    module-level import of another is an edge. Imports inside functions or ``if TYPE_CHECKING:`` are not edges.
(c) ``nightbatch.quality`` (checks, ladders, shadow sampling, drift) depends on nothing but the leaf modules
    below it: it is data the stages consume, never a caller of them.

Each failure names the module and what it imports.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "nightbatch"
FLOWS = ROOT / "flows"

DATABASE_LIBRARIES = ("sqlalchemy", "sqlmodel", "alembic")
DATABASE_HOMES = ("src/nightbatch/db/", "src/nightbatch/migrations/")
QUALITY_MAY_IMPORT = {"quality", "errors", "catalog", "pricing", "thinking"}

# Known offences, each exact: (rule, module, what it imports). Empty: every statement lives in db/. An entry
# that no longer offends fails the test too, so the list can only shrink.
KNOWN_UNTIL_MERGE: set[tuple[str, str, str]] = set()


@dataclass(frozen=True)
class Import:
    """One import statement: the absolute module it names (plus the names it takes from it), and where it is."""

    module: str
    names: tuple[str, ...]
    line: int
    module_level: bool
    """At module level, outside ``if TYPE_CHECKING:`` (a function, class body or TYPE_CHECKING block is not)."""


def _modules() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *FLOWS.rglob("*.py")])


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _dotted(path: Path) -> str:
    """``src/nightbatch/submit/step.py`` -> ``nightbatch.submit.step`` (``__init__`` is its package)."""
    parts = list(path.relative_to(ROOT / "src" if path.is_relative_to(PACKAGE) else ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_in(source: str, package: str) -> Iterator[Import]:
    """Every import of a module's ``source``; ``package`` anchors its relative imports."""

    def visit(nodes: list[ast.stmt], module_level: bool) -> Iterator[Import]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(alias.name, (), node.lineno, module_level)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                yield Import(base, tuple(a.name for a in node.names), node.lineno, module_level)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                yield from visit(node.body, False)
                yield from visit(node.orelse, module_level)
            else:
                # A function body runs when called, not when its module is imported; a class body does run.
                inner = module_level and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        yield from visit([child], inner)
                    elif isinstance(child, ast.excepthandler | ast.match_case):
                        yield from visit(child.body, inner)

    yield from visit(ast.parse(source).body, True)


def _imports(path: Path) -> Iterator[Import]:
    package = _dotted(path) if path.name == "__init__.py" else _dotted(path).rpartition(".")[0]
    yield from _imports_in(path.read_text(encoding="utf-8"), package)


def _node(module: str) -> str | None:
    """The stage a ``nightbatch`` module belongs to (``nightbatch.submit.step`` -> ``submit``); None outside."""
    parts = module.split(".")
    if parts[0] != "nightbatch":
        return None
    return parts[1] if len(parts) > 1 else "nightbatch"


def _targets(imp: Import) -> set[str]:
    """The stages one import reaches (``from nightbatch import custom_ids`` reaches ``custom_ids``)."""
    if imp.module == "nightbatch" and imp.names:
        return {n if (PACKAGE / f"{n}.py").exists() or (PACKAGE / n).is_dir() else "nightbatch" for n in imp.names}
    node = _node(imp.module)
    return {node} if node else set()


def _database_offences() -> set[tuple[str, str, str]]:
    found = set()
    for path in _modules():
        name = _name(path)
        if name.startswith(DATABASE_HOMES):
            continue
        for imp in _imports(path):
            root = imp.module.split(".")[0]
            if root in DATABASE_LIBRARIES:
                found.add(("a", name, root))
    return found


def _stage_edges() -> dict[tuple[str, str], set[str]]:
    """(from stage, to stage) -> the modules whose module-level imports make that edge."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        source = _node(_dotted(path))
        assert source is not None
        for imp in _imports(path):
            if imp.module_level:
                for target in _targets(imp) - {source}:
                    edges[(source, target)].add(_name(path))
    return edges


def _cycles(edges: dict[tuple[str, str], set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one stage (Tarjan), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return groups


def _quality_offences() -> set[tuple[str, str, str]]:
    found = set()
    for path in (PACKAGE / "quality").rglob("*.py"):
        for imp in _imports(path):
            for target in _targets(imp) - QUALITY_MAY_IMPORT:
                found.add(("c", _name(path), target))
    return found


def _known(rule: str) -> set[tuple[str, str, str]]:
    return {k for k in KNOWN_UNTIL_MERGE if k[0] == rule}


def _describe(offences: set[tuple[str, str, str]]) -> str:
    return "\n".join(f"  {module} imports {what}" for _, module, what in sorted(offences))


def test_only_the_database_port_imports_the_database_libraries():
    found = _database_offences()
    new = found - _known("a")
    assert not new, (
        "outside src/nightbatch/db/ and migrations/, modules import a database library: move the statements "
        "into a db/ module named after the state they read or change, and type engines as nightbatch.db.Engine\n"
        + _describe(new)
    )
    stale = _known("a") - found
    assert not stale, "no longer true: remove from KNOWN_UNTIL_MERGE\n" + _describe(stale)


def test_no_import_cycle_between_stage_packages():
    edges = _stage_edges()
    known = {(module, target) for _, module, target in _known("b")}
    made: set[tuple[str, str]] = set()
    kept: dict[tuple[str, str], set[str]] = {}
    for (source, target), modules in edges.items():
        made |= {(m, target) for m in modules}
        rest = {m for m in modules if (m, target) not in known}
        if rest:
            kept[(source, target)] = rest
    cycles = _cycles(kept)
    lines = []
    for group in cycles:
        lines.append(f"  cycle between {', '.join(group)}:")
        for (source, target), modules in sorted(kept.items()):
            if source in group and target in group:
                lines.append(f"    {source} -> {target}: {', '.join(sorted(modules))}")
    assert not cycles, "import cycle between stage packages (module-level imports)\n" + "\n".join(lines)
    stale = {k for k in _known("b") if (k[1], k[2]) not in made}
    assert not stale, "no longer true: remove from KNOWN_UNTIL_MERGE\n" + _describe(stale)


def test_quality_depends_only_on_the_leaf_modules():
    found = _quality_offences()
    new = found - _known("c")
    assert not new, (
        f"nightbatch.quality may import only {', '.join(sorted(QUALITY_MAY_IMPORT - {'quality'}))}: its callers "
        "read the database and pass checks, ladders and rows in as data\n" + _describe(new)
    )
    stale = _known("c") - found
    assert not stale, "no longer true: remove from KNOWN_UNTIL_MERGE\n" + _describe(stale)


def test_the_guard_sees_what_it_guards():
    """Imports in a function, a TYPE_CHECKING block and an except clause are found; only the first is module level."""
    source = (
        "from typing import TYPE_CHECKING\nimport nightbatch.submit\nif TYPE_CHECKING:\n    import sqlalchemy\n"
        "def f():\n    from sqlmodel import col\ntry:\n    from . import checks\nexcept ImportError:\n"
        "    from ..collect import ingest\n"
    )
    found = {(i.module, i.module_level) for i in _imports_in(source, "nightbatch.quality")}
    assert found == {
        ("typing", True),
        ("nightbatch.submit", True),
        ("sqlalchemy", False),
        ("sqlmodel", False),
        ("nightbatch.quality", True),
        ("nightbatch.collect", True),
    }


def _sessions_opened(path: Path) -> Iterator[tuple[int, str]]:
    """Calls that open a connection, transaction or session: ``<...engine>.begin()/.connect()``, ``Session(...)``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("begin", "connect"):
            receiver = ast.unparse(func.value)
            if "engine" in receiver.lower():
                yield node.lineno, f"{receiver}.{func.attr}()"
        elif isinstance(func, ast.Name) and func.id == "Session":
            yield node.lineno, "Session(...)"


def test_no_stage_opens_a_connection_or_session_itself():
    found = [
        f"{_name(path)}:{line}: {call}"
        for path in _modules()
        if not _name(path).startswith(DATABASE_HOMES)
        for line, call in _sessions_opened(path)
    ]
    assert not found, (
        "stages call named reads and transitions of db/ (or hold db.engine.transaction / reading to combine "
        "them), never a connection of their own:\n" + "\n".join(found)
    )
