"""The `sam build` Makefile targets, run as sam runs them (in a copy of the code, ARTIFACTS_DIR set), offline.

The layer's real requirements are swapped for wheels made here (a "native" one per architecture, a pure one with
a console script) and pip reads only that wheelhouse, so the test needs no network; the messenger package and
the Makefiles are the real ones. `python -m bench` builds the real layer with `sam build`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER_SRC = ROOT / "layers" / "messenger"
UNCHECKED_HASH = 0b01  # pyc flags: hash-based, source not checked (PEP 552)


def python313() -> str:
    return subprocess.run(
        [str(ROOT / "scripts" / "find-python313.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()


def make_wheel(wheelhouse: Path, name: str, tag: str, files: dict[str, str], entry_points: str = "") -> None:
    dist_info = f"{name}-1.0.dist-info"
    contents = {
        **files,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n",
    }
    if entry_points:
        contents[f"{dist_info}/entry_points.txt"] = entry_points
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    contents[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(wheelhouse / f"{name}-1.0-{tag}.whl", "w") as wheel:
        for path, text in contents.items():
            wheel.writestr(path, text)


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    house = tmp_path_factory.mktemp("wheelhouse")
    for arch in ("aarch64", "x86_64"):
        make_wheel(
            house, "fakenative", f"cp313-cp313-manylinux2014_{arch}", {"fakenative/__init__.py": f"ARCH = {arch!r}\n"}
        )
    make_wheel(
        house,
        "fakepure",
        "py3-none-any",
        {"fakepure/__init__.py": "from fakepure.sub import VALUE\n", "fakepure/sub.py": "VALUE = 1\n"},
        entry_points="[console_scripts]\nfakepure = fakepure:main\n",
    )
    return house


def run_make(
    makefile: Path, target: str, cwd: Path, artifacts: Path, wheelhouse: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`make -f makefile target` as sam build runs it: Python 3.13 first on PATH, ARTIFACTS_DIR set."""
    environ = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(python313()).parent), os.environ["PATH"]]),
        "ARTIFACTS_DIR": str(artifacts),
        **env,
    }
    if wheelhouse is not None:
        environ.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse))
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(makefile), target],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
    )


def build_layer(tmp_path: Path, wheelhouse: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    source = tmp_path / "src"
    shutil.copytree(LAYER_SRC, source, ignore=shutil.ignore_patterns("requirements.txt"))
    (source / "requirements.txt").write_text("fakenative\nfakepure\n")
    stale = source / "messenger" / "__pycache__" / "stale.cpython-313.pyc"
    stale.parent.mkdir(exist_ok=True)
    stale.write_bytes(b"not bytecode")
    artifacts = tmp_path / "artifacts"
    return run_make(source / "Makefile", "build-MessengerLayer", source, artifacts, wheelhouse, **env), artifacts


def pyc_of(source: Path) -> Path:
    return source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"


def assert_all_unchecked_hash_bytecode(tree: Path) -> int:
    sources = list(tree.rglob("*.py"))
    assert sources
    for source in sources:
        pyc = pyc_of(source)
        assert pyc.is_file(), f"no cpython-313 bytecode for {source.relative_to(tree)}"
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == UNCHECKED_HASH, f"{pyc.relative_to(tree)} is not an unchecked-hash pyc (flags {flags})"
    return len(sources)


@pytest.fixture(scope="module")
def default_build(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """The layer built with the default architecture (the wheelhouse has an aarch64 and an x86_64 native wheel)."""
    done, artifacts = build_layer(tmp_path_factory.mktemp("layer"), wheelhouse)
    assert done.returncode == 0, done.stderr
    return artifacts / "python"


def test_layer_target_installs_the_arm64_wheels_copies_the_package_and_compiles_everything(
    default_build: Path,
) -> None:
    # Then python/ holds the arm64 wheel, the pure wheel and the package, every module with its bytecode
    site = default_build
    assert (site / "fakenative" / "__init__.py").read_text() == "ARCH = 'aarch64'\n"
    assert (site / "fakepure" / "sub.py").is_file()
    assert (site / "messenger" / "inbound" / "routes.py").is_file()
    assert assert_all_unchecked_hash_bytecode(site) > 20
    # and nothing the Lambda runtime cannot use: no console scripts, no stale bytecode from the source tree
    assert not (site / "bin").exists()
    assert not (site / "messenger" / "__pycache__" / "stale.cpython-313.pyc").exists()


def package_files(package: Path) -> set[str]:
    """The files of a package tree (modules and data), without bytecode, by path inside it."""
    return {
        p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def test_layer_artifact_holds_the_layer_source_tree_and_nothing_else(default_build: Path) -> None:
    # sam build runs this same Makefile target (template.yaml: BuildMethod makefile) in a copy of
    # layers/messenger/, so what it leaves in python/ is what the deployed layer holds.
    # Then the messenger package in the artifact is exactly the layer's source tree, file for file
    shipped = package_files(default_build / "messenger")
    assert shipped == package_files(LAYER_SRC / "messenger")
    assert "inbound/routes.py" in shipped and "reply/rules/default.json" in shipped
    # and beside it only what requirements.txt installs: no dev support (devkit/, the in-memory store), no tests
    top = {p.name for p in default_build.iterdir()}
    assert top == {"messenger", "fakenative", "fakepure", "fakenative-1.0.dist-info", "fakepure-1.0.dist-info"}
    assert not any("memory" in name for name in shipped)


def test_layer_target_takes_x86_64_wheels_when_asked_and_refuses_other_architectures(
    tmp_path: Path, wheelhouse: Path
) -> None:
    done, artifacts = build_layer(tmp_path / "x86", wheelhouse, LAMBDA_ARCH="x86_64")
    assert done.returncode == 0, done.stderr
    assert (artifacts / "python" / "fakenative" / "__init__.py").read_text() == "ARCH = 'x86_64'\n"

    refused, artifacts = build_layer(tmp_path / "sparc", wheelhouse, LAMBDA_ARCH="sparc")
    assert refused.returncode != 0
    assert "LAMBDA_ARCH must be arm64 or x86_64" in refused.stderr
    assert not (artifacts / "python").exists()


def test_built_package_imports_from_its_bytecode_alone(tmp_path: Path, default_build: Path) -> None:
    # Given a built layer whose sources are then replaced by code that fails if run
    site = tmp_path / "python"
    shutil.copytree(default_build, site)
    for module in ("inbound/routes", "config"):
        (site / "messenger" / f"{module}.py").write_text("raise SystemExit('the source was read')\n")

    # When the package is imported from it without writing bytecode (its dependencies from this virtualenv)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import messenger.inbound.routes as w, fakepure; "
        "print(w.__file__, w.__spec__.cached)"
    )
    imported = subprocess.run(
        [sys.executable, "-B", "-c", code, str(site)],
        capture_output=True,
        text=True,
        env={**os.environ, "EVENTS_TABLE": "t", "AWS_DEFAULT_REGION": "eu-west-1"},
    )

    # Then it imports from the shipped pycs: unchecked-hash bytecode never looks at the source
    assert imported.returncode == 0, imported.stderr
    source, cached = imported.stdout.split()
    assert Path(source) == site / "messenger" / "inbound" / "routes.py"
    assert Path(cached) == pyc_of(site / "messenger" / "inbound" / "routes.py")


@pytest.mark.parametrize("function_id, code_uri", [("WebhookFunction", "webhook"), ("ReplyFunction", "reply")])
def test_function_target_ships_the_handler_with_its_bytecode(tmp_path: Path, function_id: str, code_uri: str) -> None:
    # Given a copy of the function's CodeUri, as sam build makes one
    source = tmp_path / "src"
    shutil.copytree(ROOT / "functions" / code_uri, source, ignore=shutil.ignore_patterns("__pycache__"))
    artifacts = tmp_path / "artifacts"

    # When sam's make target for it runs
    done = run_make(ROOT / "functions" / "Makefile", f"build-{function_id}", source, artifacts)

    # Then the artifact is the handler module and its unchecked-hash bytecode, and it imports from there
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in artifacts.iterdir()) == ["__pycache__", "app.py"]
    assert assert_all_unchecked_hash_bytecode(artifacts) == 1
    (artifacts / "app.py").write_text("raise SystemExit('the source was read')\n")
    code = "import sys; sys.path[:0] = sys.argv[1:]; import app; print(app.lambda_handler.__name__)"
    imported = subprocess.run(
        [sys.executable, "-B", "-c", code, str(artifacts), str(LAYER_SRC)],
        capture_output=True,
        text=True,
        env={**os.environ, **lambda_env()},
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "lambda_handler"


def lambda_env() -> dict[str, str]:
    return {
        "EVENTS_TABLE": "t",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "META_SECRET_ID": "m",
        "VONAGE_SECRET_ID": "v",
    }
