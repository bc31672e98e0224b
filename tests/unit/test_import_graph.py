"""The import graph of ``src/semkit``: no cycle, and only the doors import the package root.

Every module is parsed (not imported), and every import counts wherever it is written: at
module level, inside a function (a lazy import is still a dependency), or through
``importlib.import_module`` with a literal name. Imports under ``if TYPE_CHECKING:`` never run,
so they do not count.

Edges, for a module ``semkit.pkg.mod``:

- ``import semkit.a.b`` → ``semkit.a.b`` (the parents' ``__init__`` run too, but a parent is
  already being imported when its child is, so that is no edge);
- ``from X import name`` → ``X.name`` when that is a module, else ``X``; relative imports are
  resolved first, so ``from . import x`` is an edge to ``semkit.pkg.x``, never to
  ``semkit.pkg``, while ``from .. import model`` is an edge to the root ``semkit``;
- ``import semkit.a`` also binds the name ``semkit``: a later ``semkit.model(...)`` in the same
  module is an edge to the root.
"""

from __future__ import annotations

import ast
import unittest.mock
from collections import deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "semkit"
DOORS = ("semkit.cli", "semkit.server")  # may import the package root


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{_path(self.source)}:{self.line} imports {self.target}"


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _path(module: str) -> str:
    return str(modules()[module].relative_to(SRC))


def _is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


def _known(dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a module of the package (None: not ours)."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    while parts:
        name = ".".join(parts)
        if name in modules():
            return name
        parts.pop()
    return None


def _relative_base(module: str, level: int, name: str | None) -> str:
    """What ``from {'.' * level}{name} import ...`` refers to, written in ``module``."""
    package = module.split(".") if _is_package(module) else module.split(".")[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)]
    return ".".join([*package, *([name] if name else [])])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """Collects the edges of one module."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.edges: list[Edge] = []
        self.binds_root_name = False  # `import semkit.x` (no `as`) binds the name `semkit`
        self.root_attributes: list[tuple[str, int]] = []  # `semkit.NAME` uses, checked at the end

    def _add(self, target: str | None, line: int) -> None:
        if target is not None:
            self.edges.append(Edge(self.module, target, line))

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # the `else:` of `if TYPE_CHECKING:` does run
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(_known(alias.name), node.lineno)
            if alias.asname is None and alias.name.split(".")[0] == PACKAGE and "." in alias.name:
                self.binds_root_name = True

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _relative_base(self.module, node.level, node.module) if node.level else (node.module or "")
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in modules() else _known(base), node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            target: str = node.args[0].value
            if target.startswith("."):
                level = len(target) - len(target.lstrip("."))
                anchor = node.args[1] if len(node.args) > 1 else None
                # importlib resolves `.x` against the *package* given: `__name__` of a package
                # module is the package itself, `__package__` always is.
                if isinstance(anchor, ast.Name) and anchor.id == "__name__":
                    package = self.module
                elif isinstance(anchor, ast.Name) and anchor.id == "__package__":
                    package = self.module if _is_package(self.module) else self.module.rpartition(".")[0]
                elif isinstance(anchor, ast.Constant) and isinstance(anchor.value, str):
                    package = anchor.value
                else:
                    package = ""
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (level - 1)] if level > 1 else parts)
                target = f"{base}.{target.lstrip('.')}" if package else ""
            self._add(_known(target), node.lineno)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == PACKAGE:
            self.root_attributes.append((node.attr, node.lineno))
        self.generic_visit(node)


@cache
def edges() -> tuple[Edge, ...]:
    found: list[Edge] = []
    for module, path in modules().items():
        collector = _Imports(module)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        found += collector.edges
        if collector.binds_root_name:
            found += [Edge(module, PACKAGE, line) for attr, line in collector.root_attributes
                      if f"{PACKAGE}.{attr}" not in modules()]
    return tuple(dict.fromkeys(found))  # `from x import a, b` is one edge


def graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {m: set() for m in modules()}
    for edge in edges():
        out[edge.source].add(edge.target)
    return out


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: no recursion limit to meet)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path ``start → ... → start`` inside one component."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & within):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is on no cycle")


def cycles() -> list[str]:
    g = graph()
    found = []
    for component in strongly_connected(g):
        members = set(component)
        if len(component) == 1 and component[0] not in g[component[0]]:
            continue
        cycle = shortest_cycle(g, component[0], members)
        lines = [e for e in edges() if e.source in members and e.target in members]
        found.append(f"{len(component)} module(s) on a cycle, e.g. {' -> '.join(cycle)}; their imports of each other:\n"
                     + "".join(f"    {e}\n" for e in sorted(lines, key=lambda e: (e.source, e.line))))
    return found


def test_the_graph_sees_imports_everywhere() -> None:
    # A guard on the walker itself: the root's lazy imports (inside functions, and through
    # importlib in `__getattr__`) are edges, its TYPE_CHECKING imports are not.
    root = {e.target for e in edges() if e.source == PACKAGE}
    assert {"semkit.errors", "semkit.apps", "semkit.database"} <= root
    assert len(modules()) > 50


def test_no_import_cycles() -> None:
    found = cycles()
    assert not found, f"{len(found)} import cycle(s) in src/semkit:\n" + "\n".join(found)


def test_only_the_doors_import_the_package_root() -> None:
    offenders = [e for e in edges() if e.target == PACKAGE and e.source != PACKAGE
                 and not any(e.source == d or e.source.startswith(d + ".") for d in DOORS)]
    assert not offenders, (
        "only semkit.cli and semkit.server may import the package root `semkit`; below them, import "
        "the module that defines the name:\n" + "\n".join(f"    {e}" for e in offenders))


def _toy_edges(source: str, module: str, tree: dict[str, str]) -> list[tuple[str, str]]:
    """Edges of ``source`` written as ``module``, in a toy tree of ``{module: file name}``."""
    fake = {name: Path(f"/toy/{path}") for name, path in tree.items()}
    with unittest.mock.patch(f"{__name__}.modules", lambda: fake):
        collector = _Imports(module)
        collector.visit(ast.parse(source))
        return [(e.source, e.target) for e in collector.edges]


def test_relative_imports_resolve_to_submodules_not_to_their_package() -> None:
    tree = {"semkit": "__init__.py", "semkit.errors": "errors.py", "semkit.pkg": "__init__.py",
            "semkit.pkg.x": "x.py", "semkit.pkg.y": "y.py"}
    assert _toy_edges("from . import x", "semkit.pkg.y", tree) == [("semkit.pkg.y", "semkit.pkg.x")]
    assert _toy_edges("from .x import thing", "semkit.pkg.y", tree) == [("semkit.pkg.y", "semkit.pkg.x")]
    assert _toy_edges("from . import helper", "semkit.pkg.y", tree) == [("semkit.pkg.y", "semkit.pkg")]
    assert _toy_edges("from .. import errors, model", "semkit.pkg.y", tree) == [
        ("semkit.pkg.y", "semkit.errors"), ("semkit.pkg.y", "semkit")]
    assert _toy_edges("from . import x", "semkit.pkg", tree) == [("semkit.pkg", "semkit.pkg.x")]
    assert _toy_edges("def f():\n    import semkit\n", "semkit.pkg.y", tree) == [("semkit.pkg.y", "semkit")]
    assert _toy_edges("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import semkit\n",
                      "semkit.pkg.y", tree) == []
    assert _toy_edges("import importlib\nimportlib.import_module('.x', __package__)",
                      "semkit.pkg.y", tree) == [("semkit.pkg.y", "semkit.pkg.x")]


def test_tarjan_finds_cycles_and_self_loops() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    components = {tuple(c) for c in strongly_connected(g)}
    assert ("a", "b", "c") in components and ("d",) in components and ("e",) in components
    assert shortest_cycle(g, "a", {"a", "b", "c"}) == ["a", "b", "c", "a"]
