"""Import the Lambda code as `sam build` lays it out: every layers/*/ on sys.path (Lambda's /opt/python), and
a function's module loaded from its file under a name of its own (both functions call theirs app.py).

Shared by the tests, bench/, scripts/, tools/ and the local stack (`local.workers.load_handler`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def add_layers_to_path() -> None:
    """Put every layers/*/ directory on sys.path, as sam build lays them out under /opt/python."""
    for layer in sorted((ROOT / "layers").glob("*/")):
        if str(layer) not in sys.path:
            sys.path.insert(0, str(layer))


def load_module(path: Path, module_name: str) -> ModuleType:
    """Import the file at `path` as `module_name` (registered in sys.modules, as a fresh module)."""
    add_layers_to_path()
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_function(name: str, module_name: str | None = None) -> ModuleType:
    """functions/<name>/app.py, imported once per module name (default `<name>_app`)."""
    module_name = module_name or f"{name}_app"
    if module_name in sys.modules:
        return sys.modules[module_name]
    return load_module(ROOT / "functions" / name / "app.py", module_name)
