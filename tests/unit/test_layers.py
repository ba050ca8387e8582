"""The package map of docs/architecture.rst, checked from the imports (issue #17 §1).

Every module of ``proxy/`` is read with ``ast`` (imports inside functions count too) and
mapped to its layer. A module may import its own package and the layers below it, never
one above; the leaves (``proxy``'s ``__init__``, ``errors``, ``settings``) import nothing
of ours. The package graph therefore has no cycle; that is checked on its own as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "proxy"

#: Bottom to top. A package imports only its own modules and those of earlier entries.
LAYERS = ("leaf", "protocol", "access", "transport", "observe", "serve", "process", "entry")
#: Top-level modules that are leaves: everything may import them.
LEAVES = {"proxy", "proxy.errors", "proxy.settings"}
#: Top-level modules above everything: entry points and the compatibility shims of the
#: user-facing paths (``proxy.auth``, ``proxy.tokens``, ``proxy.cli``, ...).
ENTRY = {"proxy.__main__", "proxy.auth", "proxy.tokens", "proxy.cli", "proxy.replay",
         "proxy.server", "proxy.runner", "proxy.client"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> str:
    """The layer of a ``proxy`` module; KeyError for one the map does not place."""
    if module in LEAVES:
        return "leaf"
    if module in ENTRY or module.startswith("proxy._websockify"):
        return "entry"
    package = module.split(".")[1]
    if package not in LAYERS[1:-1]:
        raise KeyError(module)
    return package


def imported_modules(path: Path, known: Iterable[str]) -> set[str]:
    """The ``proxy`` modules ``path`` imports (``from proxy.x import y`` counts ``proxy.x.y``
    when that is a module, else ``proxy.x``)."""
    known = set(known)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"  # the package uses absolute ones
            base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return {name for name in found if name == "proxy" or name.startswith("proxy.")}


def package_graph(edges: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Module edges folded onto layers, without self-loops."""
    graph: dict[str, set[str]] = {}
    for source, targets in edges.items():
        graph.setdefault(layer_of(source), set()).update(
            layer_of(t) for t in targets if layer_of(t) != layer_of(source))
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    found = modules()
    return {name: imported_modules(path, found) for name, path in found.items()}


def test_every_module_has_a_place_on_the_map() -> None:
    unplaced = []
    for name in modules():
        try:
            layer_of(name)
        except KeyError:
            unplaced.append(name)
    assert unplaced == []


def test_the_packages_are_the_ones_the_map_draws() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"_websockify"}
    assert packages == set(LAYERS[1:-1])


def test_no_module_imports_a_layer_above_its_own(edges: dict[str, set[str]]) -> None:
    upward = sorted(
        f"{source} imports {target}"
        for source, targets in edges.items() for target in targets
        if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(source)))
    assert upward == []


def test_the_leaves_import_nothing_of_ours(edges: dict[str, set[str]]) -> None:
    assert {leaf: edges[leaf] for leaf in LEAVES if edges[leaf]} == {}


def test_nothing_inside_the_packages_imports_a_shim(edges: dict[str, set[str]]) -> None:
    """The shims are for users; our own code uses the real paths."""
    users = sorted(f"{source} imports {target}" for source, targets in edges.items()
                   if layer_of(source) != "entry" for target in targets & ENTRY)
    assert users == []


def test_the_package_graph_has_no_cycle(edges: dict[str, set[str]]) -> None:
    assert find_cycle(package_graph(edges)) is None


def test_the_checks_see_an_upward_import_and_a_cycle() -> None:
    """The checks above can fail: a made-up access -> serve -> access pair is caught."""
    made_up = {"proxy.access.resolve": {"proxy.serve.web"},
               "proxy.serve.web": {"proxy.access.resolve"}}
    assert find_cycle(package_graph(made_up)) == ["access", "serve", "access"]
    assert LAYERS.index(layer_of("proxy.serve.web")) > LAYERS.index("access")


def test_imports_inside_functions_count(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from proxy.serve import handler\n    import proxy.errors\n")
    assert imported_modules(source, {"proxy.serve.handler"}) == {
        "proxy.serve.handler", "proxy.errors"}
