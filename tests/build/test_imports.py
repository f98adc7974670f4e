"""Imports go one way: no import circle anywhere in the repo, and the top-level folders import only down the
list in docs/design.md's map (the deployed layer imports nothing outside itself).

Read from the source (AST), not by importing: every import counts, also one inside a function or under
`if TYPE_CHECKING:` (a circle that only type checkers see is still a circle a reader has to untangle).
`from package import name` counts as an import of the submodule `package.name` when that file exists, else of
`package` itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", "node_modules", ".git", ".aws-sam", ".local", "__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_DIRS |= {".hypothesis", ".mypy_cache", "build", "dist"}

# Top-level folder -> the folders (besides itself and third-party packages) it may import. `messenger` is the
# layer package (layers/messenger/messenger); `functions` are the handlers. bench/ and tests/ import anything.
MAY_IMPORT: dict[str, set[str]] = {
    "messenger": set(),
    "functions": {"messenger"},
    "devkit": {"messenger"},
    "local": {"devkit", "messenger"},
    "sam_local_docker": {"local", "devkit", "messenger"},
    "deploy_local": {"local", "devkit", "messenger", "sam_local_docker.build"},
    "tools": {"devkit", "messenger"},
    "scripts": {"devkit", "messenger"},
}


class Import(NamedTuple):
    source: str  # the importing module
    target: str  # the first-party module imported
    where: str  # path:line


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.iterdir()):
        if path.is_dir() and path.name not in SKIP_DIRS and not path.name.endswith(".egg-info"):
            yield from python_files(path)
        elif path.suffix == ".py":
            yield path


def module_name(path: Path) -> str:
    """The name the file is imported under: layers/<layer>/ is on sys.path (Lambda's /opt/python), the repo
    root for everything else; a function's app.py is loaded from its file, so it keeps its path as its name."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "layers":
        parts = parts[2:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in python_files(ROOT)}


def _known_prefix(name: str, known: dict[str, Path]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def imports_of(name: str, path: Path, known: dict[str, Path], root: Path = ROOT) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    rel = path.relative_to(root).as_posix()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base = ".".join(base_parts[: len(base_parts) - node.level + 1] + [node.module or ""]).strip(".")
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            resolved = _known_prefix(target, known)
            if resolved is not None and resolved != name:
                yield Import(name, resolved, f"{rel}:{node.lineno}")


def import_graph() -> tuple[dict[str, set[str]], list[Import]]:
    known = modules()
    edges: list[Import] = [edge for name, path in known.items() for edge in imports_of(name, path, known)]
    graph: dict[str, set[str]] = {name: set() for name in known}
    for edge in edges:
        graph[edge.source].add(edge.target)
    return graph, edges


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def top_folder(module: str) -> str:
    return module.split(".")[0]


def allowed(source: str, target: str) -> bool:
    folder, wanted = top_folder(source), top_folder(target)
    if folder == wanted or folder not in MAY_IMPORT:
        return True
    return any(target == rule or target.startswith(rule + ".") for rule in MAY_IMPORT[folder])


def test_the_graph_sees_the_repo() -> None:
    # Given the repo / When its imports are read / Then every folder is there and known edges are found
    graph, edges = import_graph()
    assert {top_folder(name) for name in graph} >= set(MAY_IMPORT) | {"tests", "bench"}
    assert "devkit.lambda_code" in graph["devkit.payloads"]
    assert any(edge.source == "local.__main__" and top_folder(edge.target) == "local" for edge in edges)
    # imports inside functions count too (bench imports the local stack lazily)
    assert any(top_folder(edge.source) == "bench" and top_folder(edge.target) == "local" for edge in edges)


def test_no_import_circle_anywhere() -> None:
    graph, _ = import_graph()
    assert circles(graph) == []


def test_folders_import_only_down_the_map() -> None:
    _, edges = import_graph()
    wrong = [f"{edge.where}: {edge.source} imports {edge.target}" for edge in edges if not allowed(*edge[:2])]
    assert wrong == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_circles_are_found(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert circles(graph) == expected


def test_rules_refuse_an_upward_import() -> None:
    assert not allowed("messenger.storage", "devkit.payloads")
    assert not allowed("devkit.payloads", "local.services")
    assert not allowed("local.stack", "tools.connect.cli")
    assert not allowed("deploy_local.run", "sam_local_docker.checks")
    assert allowed("deploy_local.run", "sam_local_docker.build")
    assert allowed("tests.helpers", "local.services")


def test_relative_and_submodule_imports_resolve(tmp_path: Path) -> None:
    # Given `from . import b` inside package p and `from p import c` (c a plain name in p/__init__)
    known = {"p": tmp_path / "p" / "__init__.py", "p.a": tmp_path / "p" / "a.py", "p.b": tmp_path / "p" / "b.py"}
    known["p.a"].parent.mkdir()
    known["p.a"].write_text("from . import b\nfrom p import c\n\ndef f():\n    import p.b\n")
    found = [(edge.target, edge.where) for edge in imports_of("p.a", known["p.a"], known, root=tmp_path)]
    # Then the submodule, the package, and the import inside the function
    assert found == [("p.b", "p/a.py:1"), ("p", "p/a.py:2"), ("p.b", "p/a.py:5")]
