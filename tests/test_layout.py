"""The package's layout: data flows one way, so no module imports its way back.

Every import counts, also those inside functions and under TYPE_CHECKING: a
late import hides a cycle from Python, not from a reader.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.gitrepo import ROOT

pytestmark = pytest.mark.database_free  # opens no state database: run once, not per backend

PACKAGE = "errauto_daemon"


def module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of the package that the module at `path` imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # `from package import module` imports that module.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != name}


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    files = {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}
    known = set(files)
    return {name: imports_of(path, name, known) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_graph_sees_late_and_aliased_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg import b as b_mod\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.sub.c\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("from ..a import f\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg", "pkg.b"} and graph["pkg.b"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_no_import_cycles_in_the_package() -> None:
    graph = import_graph(ROOT / PACKAGE)
    assert "errauto_daemon.config" in graph and "errauto_daemon.commands.queue" in graph
    assert cycles(graph) == []


def test_config_imports_nothing_downstream() -> None:
    """The configuration is read by every stage: it may use only leaf modules."""
    graph = import_graph(ROOT / PACKAGE)
    allowed = {"errauto_daemon", "errauto_daemon.alerts", "errauto_daemon.errors", "errauto_daemon.git",
               "errauto_daemon.limits", "errauto_daemon.bwrap"}
    assert graph["errauto_daemon.bwrap"] <= {"errauto_daemon", "errauto_daemon.errors"}  # a leaf too
    package = {name for name in graph if name == "errauto_daemon.config" or name.startswith("errauto_daemon.config.")}
    assert len(package) > 1  # the package and its modules
    used = set().union(*(graph[name] for name in package)) - package
    assert used <= allowed, used - allowed


def test_repo_helpers_import_only_leaf_modules() -> None:
    """Nine modules find and name the repository through `repo`: it must sit below all of them."""
    graph = import_graph(ROOT / PACKAGE)
    allowed = {"errauto_daemon", "errauto_daemon.errors"}
    assert graph["errauto_daemon.repo"] <= allowed, graph["errauto_daemon.repo"] - allowed
    users = {name for name, imported in graph.items() if "errauto_daemon.repo" in imported}
    assert {"errauto_daemon.intake", "errauto_daemon.workspace", "errauto_daemon.merge"} <= users


def test_domain_words_are_a_leaf() -> None:
    """Every stage names states, routes and statuses through `domain`: it imports nothing of errauto."""
    graph = import_graph(ROOT / PACKAGE)
    assert graph["errauto_daemon.domain"] <= {"errauto_daemon"}, graph["errauto_daemon.domain"]
    users = {name for name, imported in graph.items() if "errauto_daemon.domain" in imported}
    assert {"errauto_daemon.store.records", "errauto_daemon.route", "errauto_daemon.checks"} <= users
