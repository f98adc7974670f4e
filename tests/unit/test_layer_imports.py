"""What the deployed layer holds is what the two handlers import: every module of layers/messenger/messenger
is in the handlers' import closure, computed statically (AST) over the package, lazy imports included; and its
imports go down: each function's side (inbound/, reply/) imports itself and the shared kernels, never the other."""

from __future__ import annotations

from pathlib import Path

from tests.import_graph import ROOT, imports_of, modules

HANDLERS = [ROOT / "functions" / "webhook" / "app.py", ROOT / "functions" / "reply" / "app.py"]
PACKAGE = "messenger"


def layer_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its __init__.py)."""
    return {name: path for name, path in modules().items() if name.split(".")[0] == PACKAGE}


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules an import of `path` (module `name`) loads directly (a module loads its parent
    packages too); not those under `if TYPE_CHECKING:`, which never run."""
    names = {edge.target for edge in imports_of(name, path, modules, root=path.parent, runtime_only=True)}
    loaded = set()
    for name in names:
        parts = name.split(".")
        loaded.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return loaded & modules.keys()


def import_closure(roots: list[Path], modules: dict[str, Path]) -> set[str]:
    seen: set[str] = set()
    todo = [name for root in roots for name in imported_modules(root.stem, root, modules)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imported_modules(name, modules[name], modules) - seen)
    return seen


def test_every_module_of_the_layer_is_imported_by_a_handler():
    # Given every module of the deployed package
    modules = layer_modules()
    assert {"messenger", "messenger.inbound.routes", "messenger.reply.wiring"} <= modules.keys()
    # When the handlers' imports are followed through the package
    closure = import_closure(HANDLERS, modules)
    # Then nothing in the layer is there only for tests, tools or the local stack
    assert sorted(modules.keys() - closure) == []


def test_the_closure_follows_lazy_imports_and_skips_type_checking_ones(tmp_path):
    # Given a tiny package: a imports b inside a function, and c only for type checking
    package = {"messenger": tmp_path / "p.py", "messenger.a": tmp_path / "a.py", "messenger.b": tmp_path / "b.py"}
    package["messenger.c"] = tmp_path / "c.py"
    package["messenger.a"].write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from messenger import c\n"
        "def f():\n    from messenger import b\n"
    )
    for name in ("messenger", "messenger.b", "messenger.c"):
        package[name].write_text("")
    root = tmp_path / "app.py"
    root.write_text("import messenger.a\n")
    # Then the closure holds a, b and the package, not c
    assert import_closure([root], package) == {"messenger", "messenger.a", "messenger.b"}


def side(module: str) -> str:
    """`inbound` or `reply` for a module of a function's side, `kernel` for what both share below them."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("inbound", "reply") else "kernel"


def test_each_side_imports_only_itself_and_the_kernels_below_it():
    # Given the modules of the layer and what each imports
    modules = layer_modules()
    upward = [
        (name, imported)
        for name, path in modules.items()
        for imported in imported_modules(name, path, modules)
        if side(imported) not in ("kernel", side(name))
    ]
    # Then no kernel imports a side and neither side imports the other
    assert upward == []
