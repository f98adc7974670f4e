"""Cold import of each function from what `sam build` ships, laid out as Lambda lays it out.

    python -m bench.coldstart [--runs 9] [--no-build] [--importtime] [--no-instructions]

Each sample is a fresh interpreter run with `-B -S` (no bytecode written, no site-packages: only what the
artifact ships is importable) and sys.path = [function dir, layer python/], LAMBDA_TASK_ROOT set and the
template's environment (tracing on). The floor is `import boto3` from a bytecode-compiled copy of the layer's
own boto3. On a machine that is not arm64 the layer's native packages (cryptography, cffi, wrapt, ...) cannot
load, so a copy of the layer with the host-architecture wheels of the same versions is imported instead; the
report says so.

Wall and CPU medians of a few hundred milliseconds swing by 20% between batches on a busy or virtualised
machine. Where valgrind is installed the report adds the instructions each import executes (callgrind, minus
an interpreter that imports nothing): the same count on every run, so the steady figure for a change.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.common import ROOT, Row, table
from devkit.local_aws import LOCAL_CREDENTIALS
from local.template import function_environment, function_spec

BUILD_DIR = ROOT / ".aws-sam" / "build"
LAYER_ID = "MessengerLayer"
FUNCTIONS = {"WebhookFunction": 1.5, "ReplyFunction": 2.0}  # function id -> goal (ratio to import boto3)
FLOOR = "boto3"
# Stand-ins for the stack's resources: importing must not need them to exist.
RESOLVE = {
    "EventsTable": "bench-events",
    "MetaSecret": "bench/meta",
    "VonageSecret": "bench/vonage",
    "ReplyFailureQueue": "bench-failures",
}

CHILD = """
import json, resource, sys, time
sys.path[:0] = {paths!r}
wall, cpu = time.perf_counter(), time.process_time()
__import__({module!r})  # the C import path, as the runtime's import of the handler (and -X importtime sees it)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({{"wall": wall, "cpu": cpu, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "modules": len(sys.modules)}}))
"""


@dataclass
class Subject:
    name: str
    module: str
    paths: list[str]
    env: dict[str, str]


def sam_build() -> None:
    """`sam build` with the pinned SAM CLI and Python 3.13 first on PATH (samconfig.toml: cached, parallel)."""
    sam = subprocess.run(["make", "-s", "sam-cli"], cwd=ROOT, check=True, capture_output=True, text=True)
    python = subprocess.run(
        [str(ROOT / "scripts" / "find-python313.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")])}
    done = subprocess.run(
        [sam.stdout.strip().splitlines()[-1], "build"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit("sam build failed")


def bytecode_coverage(directory: Path) -> tuple[int, int]:
    """(.py files, of which have a cpython-313 .pyc beside them in __pycache__)."""
    sources = list(directory.rglob("*.py"))
    compiled = sum((s.parent / "__pycache__" / f"{s.stem}.cpython-313.pyc").is_file() for s in sources)
    return len(sources), compiled


def native_distributions(site: Path) -> dict[str, str]:
    """Distributions in `site` whose wheel is platform-specific: name -> version."""
    found = {}
    for wheel in site.glob("*.dist-info/WHEEL"):
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        if tags and not any(tag.endswith("-any") for tag in tags):
            name, version = wheel.parent.name.removesuffix(".dist-info").rsplit("-", 1)
            found[name] = version
    return found


def host_layer(layer: Path, work: Path) -> tuple[Path, dict[str, str]]:
    """The layer as this machine can import it: itself on arm64, else a copy with host wheels for native parts."""
    if platform.machine() in ("aarch64", "arm64"):
        return layer, {}
    copy = work / "layer-host" / "python"
    shutil.copytree(layer, copy, symlinks=True)
    natives = native_distributions(copy)
    for name, version in natives.items():
        (record,) = copy.glob(f"{name}-{version}.dist-info/RECORD")
        for line in record.read_text().splitlines():
            path = copy / line.split(",", 1)[0]
            if path.is_file() and path.resolve().is_relative_to(copy.resolve()):
                path.unlink()
        shutil.rmtree(record.parent)
    wheels = work / "host-wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--root-user-action",
            "ignore",
            "--no-compile",
            "--no-deps",
            "--target",
            str(wheels),
            "--platform",
            f"manylinux2014_{platform.machine()}",
            "--only-binary=:all:",
            "--python-version",
            "3.13",
            "--implementation",
            "cp",
            *(f"{name}=={version}" for name, version in natives.items()),
        ],
        check=True,
    )
    if bytecode_coverage(copy)[1]:  # ship the substitutes like the artifact ships the rest
        compileall.compile_dir(
            wheels,
            quiet=1,
            workers=0,
            stripdir=str(wheels),
            prependdir="/opt/python",
            invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    shutil.copytree(wheels, copy, dirs_exist_ok=True)
    return copy, natives


def boto3_copy(layer: Path, work: Path) -> Path:
    """The layer's sources (hence its boto3) without its bytecode, compiled the usual way (timestamp pycs)."""
    copy = work / "boto3-floor"
    shutil.copytree(layer, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "messenger"))
    compileall.compile_dir(copy, quiet=1, workers=0)
    return copy


def lambda_env(function_id: str, task_root: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        **LOCAL_CREDENTIALS,
        "AWS_REGION": LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
        **function_environment(function_id, RESOLVE),
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": f"bench-{function_id}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function_spec(function_id).memory_mb),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
    }


def subjects(build: Path, layer: Path, floor: Path) -> list[Subject]:
    found = []
    for function_id in FUNCTIONS:
        spec = function_spec(function_id)
        task_root = build / function_id
        module = spec.handler.rsplit(".", 1)[0]
        found.append(Subject(function_id, module, [str(task_root), str(layer)], lambda_env(function_id, task_root)))
    found.append(Subject(FLOOR, "boto3", [str(floor)], lambda_env("WebhookFunction", build / "WebhookFunction")))
    return found


def cold_import(subject: Subject, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    code = CHILD.format(paths=subject.paths, module=subject.module)
    done = subprocess.run(
        [sys.executable, "-B", "-S", *extra, "-c", code],
        env=subject.env,
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {subject.name} failed:\n{done.stderr[-3000:]}")
    return done


def measure(items: list[Subject], runs: int) -> dict[str, list[dict[str, float]]]:
    """`runs` rounds, each importing every subject once in a fresh interpreter (interleaved against drift)."""
    samples: dict[str, list[dict[str, float]]] = defaultdict(list)
    for _ in range(runs):
        for subject in items:
            samples[subject.name].append(json.loads(cold_import(subject).stdout.strip().splitlines()[-1]))
    return samples


COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(subject: Subject) -> int:
    """Instructions one cold import of `subject` executes, interpreter start-up and exit included (callgrind)."""
    code = CHILD.format(paths=subject.paths, module=subject.module)
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as out:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind.out", sys.executable, "-B", "-S"]
            + ["-c", code],
            env={**subject.env, "PYTHONHASHSEED": "0"},  # the same dict layouts on every run
            cwd=tempfile.gettempdir(),
            capture_output=True,
            text=True,
        )
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind of {subject.name} failed:\n{done.stderr[-3000:]}")
    return int(found[1])


def instruction_report(items: list[Subject]) -> list[str]:
    """Instructions of each function's import and of the floor's, net of an interpreter that imports nothing."""
    baseline = instructions(Subject("start-up", "sys", [], items[-1].env))
    counts = {subject.name: instructions(subject) - baseline for subject in items}
    lines = [
        "\ninstructions each cold import executes (valgrind callgrind, interpreter start-up subtracted; the same "
        "count on every run):"
    ]
    for name, goal in FUNCTIONS.items():
        ratio = counts[name] / counts[FLOOR]
        lines.append(
            f"  {name:16} {counts[name] / 1e6:8.1f} M   {ratio:.2f}x import boto3 ({counts[FLOOR] / 1e6:.1f} M)   "
            f"goal <= {goal}  {'PASS' if ratio <= goal else 'MISS'}"
        )
    return lines


LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


def importtime(subject: Subject, top: int = 25) -> str:
    """`-X importtime` of one cold import: self time summed per top-level package, and the handler module's
    direct imports with their cumulative time."""
    stderr = cold_import(subject, ("-X", "importtime")).stderr
    entries = [(int(m[1]), int(m[2]), len(m[3]) // 2, m[4]) for m in LINE.finditer(stderr)]
    per_package: dict[str, int] = defaultdict(int)
    for self_us, _, _, name in entries:
        per_package[name.split(".")[0]] += self_us
    # A module's line comes after its imports' lines, which are one level deeper.
    end = max(i for i, entry in enumerate(entries) if entry[3] == subject.module)
    depth, direct = entries[end][2], []
    for _, cumulative_us, level, name in reversed(entries[:end]):
        if level <= depth:
            break
        if level == depth + 1:
            direct.append((cumulative_us, name))
    lines = [f"-X importtime of {subject.name}: {entries[end][1] / 1000:.1f} ms; self time per top-level package (ms)"]
    ranked = sorted(per_package.items(), key=lambda item: -item[1])[:top]
    lines += [f"  {us / 1000:8.1f}  {name}" for name, us in ranked]
    lines.append(f"{subject.module}'s own imports, cumulative (ms)")
    lines += [f"  {us / 1000:8.1f}  {name}" for us, name in sorted(direct, reverse=True)]
    return "\n".join(lines)


def report(samples: dict[str, list[dict[str, float]]]) -> tuple[list[Row], list[str]]:
    """A wall-time and a CPU-time row per function. Both are shown: an import is CPU-bound, so on a busy shared
    machine the CPU ratio is the steadier figure, and the wall ratio is the one a quiet machine (or Lambda) sees."""
    rows = []
    for measure in ("wall", "cpu"):
        floor = [s[measure] for s in samples[FLOOR]]
        rows += [
            Row(f"cold import {name} vs boto3, {measure}", [s[measure] for s in samples[name]], floor, goal=goal)
            for name, goal in FUNCTIONS.items()
        ]
    lines = [
        f"{name:16} peak RSS {max(s['rss_kb'] for s in samples[name]) / 1024:6.1f} MB   "
        f"modules {int(statistics.median(s['modules'] for s in samples[name]))}"
        for name in [*FUNCTIONS, FLOOR]
    ]
    return rows, lines


def run(
    runs: int,
    build: bool = True,
    show_importtime: bool = False,
    build_dir: Path = BUILD_DIR,
    count_instructions: bool = True,
) -> list[Row]:
    if build_dir == BUILD_DIR and (build or not BUILD_DIR.is_dir()):
        print("sam build (pinned SAM CLI) ...", flush=True)
        sam_build()
    layer = build_dir / LAYER_ID / "python"
    for part in [layer, *(build_dir / f for f in FUNCTIONS)]:
        sources, compiled = bytecode_coverage(part)
        print(f"{part.relative_to(build_dir)}: {compiled} of {sources} .py files have cpython-313 bytecode")
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        work = Path(tmp)
        importable, natives = host_layer(layer, work)
        if natives:
            print(
                f"this machine is {platform.machine()}: imported the layer with {platform.machine()} wheels of its "
                f"native packages ({', '.join(f'{n} {v}' for n, v in sorted(natives.items()))}); "
                "every other file is the artifact's own"
            )
        items = subjects(build_dir, importable, boto3_copy(layer, work))
        if show_importtime:
            print(importtime(items[0]))
        samples = measure(items, runs)
        counted = instruction_report(items) if count_instructions and shutil.which("valgrind") else []
    rows, lines = report(samples)
    print(
        f"\ncold imports from the sam build output: median of {runs} fresh `python -B -S` interpreters each, "
        "floor = `import boto3` (the layer's boto3, bytecode-compiled)\n"
    )
    print(table(rows))
    print("\n" + "\n".join(lines))
    if counted:
        print("\n".join(counted))
    elif count_instructions:
        print("\n(valgrind is not installed: no instruction counts; `apt-get install valgrind` adds them)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.coldstart", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-build", action="store_true", help="reuse .aws-sam/build as it is")
    parser.add_argument("--importtime", action="store_true", help="also break the webhook's import down")
    parser.add_argument("--no-instructions", action="store_true", help="skip the callgrind instruction counts")
    parser.add_argument(
        "--build-dir", type=Path, default=BUILD_DIR, help="measure another sam build output as it is (never rebuilt)"
    )
    args = parser.parse_args(argv)
    run(
        args.runs,
        build=not args.no_build,
        show_importtime=args.importtime,
        build_dir=args.build_dir.resolve(),
        count_instructions=not args.no_instructions,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
