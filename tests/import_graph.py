"""Read the repository's imports from the source (AST), not by importing: the graph tests/build/test_imports.py
checks for circles and upward imports, and tests/unit/test_layer_imports.py follows from the handlers.

`from package import name` counts as an import of the submodule `package.name` when that file exists, else of
`package` itself; an import inside a function counts (it still loads).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", "node_modules", ".git", ".aws-sam", ".local", "__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_DIRS |= {".hypothesis", ".mypy_cache", "build", "dist"}


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


def type_checking_only(tree: ast.AST) -> set[int]:
    """The ids of the import statements under `if TYPE_CHECKING:` (they never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return skipped


def imports_of(
    name: str, path: Path, known: dict[str, Path], root: Path = ROOT, *, runtime_only: bool = False
) -> Iterator[Import]:
    """The first-party modules `path` (module `name`) imports, each with where. `runtime_only`: without the
    imports under `if TYPE_CHECKING:` (what a Lambda cold start loads)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = type_checking_only(tree) if runtime_only else set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    rel = path.relative_to(root).as_posix()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
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
