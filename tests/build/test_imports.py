"""Imports go one way: no import circle anywhere in the repo, and the top-level folders import only down the
list in docs/design.md's map (the deployed layer imports nothing outside itself).

Read from the source (AST), not by importing: every import counts, also one inside a function or under
`if TYPE_CHECKING:` (a circle that only type checkers see is still a circle a reader has to untangle).
`from package import name` counts as an import of the submodule `package.name` when that file exists, else of
`package` itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.import_graph import circles, import_graph, imports_of

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
