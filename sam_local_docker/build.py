"""A throwaway x86_64 copy of template.yaml, built by `sam build` into its own directory outside the repo.

The functions are arm64 (what `sam deploy` ships, built into .aws-sam); this machine runs x86_64 containers.
The copy changes only the architectures and points CodeUri/ContentUri at the repo, so the arm64 build in
.aws-sam is never touched. `LAMBDA_ARCH=x86_64` is exported for layers built with `BuildMethod: makefile`.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from local.template import ROOT, load_template

ARCH = "x86_64"
# SAM's emulator starts the runtime on the first invoke, so the cold start (imports) counts against the
# function's Timeout; in AWS the init phase has its own budget. On a busy CI machine a cold start can take
# several seconds, so the local copy gives every function at least this much.
LOCAL_MIN_TIMEOUT_S = 60
SOURCE_KEYS = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


class BuildError(RuntimeError):
    pass


def x86_64_template(template: dict[str, Any] | None = None, root: Path = ROOT) -> dict[str, Any]:
    """The template with every architecture set to x86_64 and local code and build paths made absolute."""
    copied = copy.deepcopy(template if template is not None else load_template())
    function_globals = copied.get("Globals", {}).get("Function", {})
    if "Architectures" in function_globals:
        function_globals["Architectures"] = [ARCH]
    if isinstance(function_globals.get("Timeout"), int):
        function_globals["Timeout"] = max(function_globals["Timeout"], LOCAL_MIN_TIMEOUT_S)
    for resource in copied.get("Resources", {}).values():
        kind = resource.get("Type")
        properties = resource.setdefault("Properties", {})
        if kind == "AWS::Serverless::Function":
            if "Architectures" in properties:
                properties["Architectures"] = [ARCH]
            if isinstance(properties.get("Timeout"), int):
                properties["Timeout"] = max(properties["Timeout"], LOCAL_MIN_TIMEOUT_S)
        if kind == "AWS::Serverless::LayerVersion":
            if "CompatibleArchitectures" in properties:
                properties["CompatibleArchitectures"] = [ARCH]
            metadata = resource.get("Metadata") or {}
            if "BuildArchitecture" in metadata:
                metadata["BuildArchitecture"] = ARCH
        key = SOURCE_KEYS.get(kind)
        if key and isinstance(properties.get(key), str) and "://" not in properties[key]:
            properties[key] = str((root / properties[key]).resolve())
        metadata = resource.get("Metadata") or {}
        if isinstance(metadata.get("ContextPath"), str):  # BuildMethod: makefile with a shared Makefile
            metadata["ContextPath"] = str((root / metadata["ContextPath"]).resolve())
    return copied


def build(sam: list[str], build_root: Path, env: dict[str, str], log: Any, template: Path | None = None) -> Path:
    """`sam build` into build_root/build (cached between runs) with x86_64 wheels; returns the built template.

    Without `template`: the x86_64 copy of template.yaml (`sam local` runs the built architecture). With it:
    that template as it is (its Architectures stay; an emulator that runs functions as host processes only
    needs the layer's native wheels to be the host's).
    """
    build_root.mkdir(parents=True, exist_ok=True)
    if template is None:
        template = build_root / "template.json"
        template.write_text(json.dumps(x86_64_template(), indent=1))
    built = build_root / "build"
    command = [
        *sam,
        "build",
        "--template-file",
        str(template),
        "--build-dir",
        str(built),
        "--cache-dir",
        str(build_root / "cache"),
        "--cached",
    ]
    what = "x86_64 copy" if template.parent == build_root else f"{template.name} with x86_64 wheels"
    log(f"sam build ({what}) into {built}")
    result = subprocess.run(
        command, cwd=build_root, env={**env, "LAMBDA_ARCH": ARCH}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BuildError(f"sam build failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return built / "template.yaml"


def python313_path(env: dict[str, str]) -> dict[str, str]:
    """`sam build` looks for python3.13 on PATH: put the one scripts/find-python313.sh finds first."""
    python = subprocess.run(
        [str(ROOT / "scripts" / "find-python313.sh")], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not python:
        raise BuildError("Python 3.13 not found (scripts/find-python313.sh)")
    directory = str(Path(python).parent)
    path = env.get("PATH", os.defpath)
    return {**env, "PATH": f"{directory}{os.pathsep}{path}"}
