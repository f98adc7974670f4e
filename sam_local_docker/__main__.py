"""`make sam-local`: every sample event and the webhook routes through SAM CLI's own emulator, checked.

    python -m sam_local_docker --sam <path of the pinned sam> --cache-dir <cache outside the repo>

As root (dockerd needs it): installs docker.io, containerd, runc and debootstrap if missing; starts a private
dockerd with no bridge networking; builds (once, then cached) a python3.13 Lambda base image; builds an
x86_64 copy of the template into its own directory; starts the local stack on free ports and writes an
--env-vars file for it; then `sam local invoke` with every sample event in events/ (Vonage ones re-signed
into a temporary copy) and `sam local start-api` with signed and forged requests, waiting for the replies
to reach the sandbox. Everything it started is stopped by pid on success, failure and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import IO, Any

from devkit.lambda_code import add_layers_to_path
from devkit.sam_env import env_json
from devkit.teardown import cleanup_always, keep_logs_unless_passed
from local.template import ROOT

add_layers_to_path()

from devkit.local_aws import REGION  # noqa: E402
from local.services import free_port, port_in_use  # noqa: E402
from sam_local_docker import checks  # noqa: E402
from sam_local_docker.build import BuildError, build, python313_path  # noqa: E402
from sam_local_docker.docker_host import Dockerd, DockerHostError, ensure_base_image, ensure_packages  # noqa: E402

WRAPPER = Path(__file__).resolve().parent / "sam_host_network.py"
STACK_START_TIMEOUT_S = 120
API_START_TIMEOUT_S = 180
REPLY_TIMEOUT_S = 60
INVOKE_TIMEOUT_S = 180


class SamLocalError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[sam-local] {time.strftime('%H:%M:%S')} {message}", flush=True)


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One run at a time per cache directory (they share dockerd's data root and the build directory)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SamLocalError(f"another `make sam-local` is running (lock {lock_path})") from None
        yield


def stop_group(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Stop a process started in its own session: `sig` to its group, SIGKILL if it does not exit."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class Stack:
    """`python -m local` on free ports with its state in a temporary directory (as tests/e2e starts it)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.ports = {name: free_port() for name in ("PORT", "DYNAMODB_PORT", "MOTO_PORT", "SANDBOX_PORT")}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = state / "stack.log"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **{k: str(v) for k, v in self.ports.items()},
            "LOCAL_STATE_DIR": str(self.state),
            "LOCAL_POLL_INTERVAL": "0.1",
            "PYTHONUNBUFFERED": "1",
        }
        log(f"starting the local stack on free ports {self.ports} (log: {self.log_path})")
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local"],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STACK_START_TIMEOUT_S
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SamLocalError(f"the local stack did not start:\n{self.log_tail()}")
            time.sleep(0.2)

    def healthy(self) -> bool:
        if not port_in_use(self.ports["PORT"]):
            return False
        with contextlib.suppress(OSError):
            return checks.http("GET", f"{self.url('PORT')}/_local/health", timeout=5)[0] == 200
        return False

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-4000:]
        return ""

    def stop(self) -> None:
        """SIGINT, as Ctrl-C in `make dev` (it stops DynamoDB Local and moto); then its service groups, if any."""
        if self.process is None:
            return
        service_pids: list[int] = []
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((self.state / f"stack-{self.ports['PORT']}.json").read_text())
            service_pids = info.get("service_pids", [])
        log(f"stopping the local stack (pid {self.process.pid})")
        stop_group(self.process, signal.SIGINT, timeout=60)
        for pid in service_pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


class Sam:
    """The pinned SAM CLI, started through the host-network wrapper, against the x86_64 build."""

    def __init__(self, sam: Path, env: dict[str, str], image: str, work: Path) -> None:
        self.python = sam.parent / "python"
        self.env = env
        self.image = image
        self.work = work
        self.template: Path | None = None
        self.env_file = work / "env.json"
        self.children: set[subprocess.Popen[str]] = set()
        self.stopping = False

    def command(self, *args: str) -> list[str]:
        return [str(self.python), str(WRAPPER), *args]

    def local_options(self) -> list[str]:
        assert self.template is not None
        return [
            "--template",
            str(self.template),
            "--env-vars",
            str(self.env_file),
            "--invoke-image",
            self.image,
            "--skip-pull-image",
            "--region",
            REGION,
        ]

    def invoke(self, function_id: str, event: Path) -> tuple[Any, str]:
        """The function's answer (parsed JSON if it is JSON) and SAM's output."""
        command = self.command("local", "invoke", function_id, "--event", str(event), *self.local_options())
        process = subprocess.Popen(
            command,
            env=self.env,
            cwd=self.work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.children.add(process)
        try:
            stdout, stderr = process.communicate(timeout=INVOKE_TIMEOUT_S)
        finally:
            stop_group(process)
            self.children.discard(process)
        output = f"$ sam local invoke {function_id} --event {event.name}\n{stderr}\n{stdout}\n"
        lines = [line for line in stdout.splitlines() if line.strip()]
        if process.returncode != 0 or not lines:
            raise SamLocalError(f"sam local invoke failed (exit {process.returncode}, no answer):\n{output}")
        try:
            return json.loads(lines[-1]), output
        except ValueError:
            return lines[-1], output

    def stop_children(self) -> None:
        for process in list(self.children):
            stop_group(process, timeout=10)

    def start_api(self, port: int, log_file: IO[bytes]) -> subprocess.Popen[bytes]:
        command = self.command(
            "local",
            "start-api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--warm-containers",
            "EAGER",
            *self.local_options(),
        )
        return subprocess.Popen(
            command, env=self.env, cwd=self.work, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )


def sam_environment(daemon: Dockerd, stack: Stack, work: Path) -> dict[str, str]:
    """The shell's environment (its AWS credentials too, as a user's) plus the private dockerd, and nothing
    that could leave the machine: no telemetry, STS answered by moto, no instance-metadata lookups.
    TMPDIR: SAM's image-build lock files stay in this run's directory (an interrupted build cannot block
    the next run)."""
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DOCKER_HOST": daemon.host,
        "SAM_CLI_TELEMETRY": "0",
        "TMPDIR": str(tmp),
        "AWS_ENDPOINT_URL_STS": stack.url("MOTO_PORT"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def sample_events() -> list[Path]:
    names = sorted(p for p in (ROOT / "events").glob("*.json") if p.name.startswith(checks.SAMPLE_PREFIXES))
    unknown = [p.name for p in names if p.name not in checks.EXPECTED]
    if unknown:
        raise SamLocalError(f"no expected answer for {', '.join(unknown)}: add them to sam_local_docker/checks.py")
    return names


def invoke_one(sam: Sam, sample: Path, directory: Path) -> tuple[str | None, str]:
    """Invoke one sample (a Vonage one re-signed right before: tokens are valid for 5 minutes)."""
    started = time.monotonic()
    event = json.loads(sample.read_text(encoding="utf-8"))
    if sample.name.startswith("vonage_"):
        event = checks.resign(event)
    copy = directory / sample.name
    copy.write_text(json.dumps(event, indent=2, ensure_ascii=False), encoding="utf-8")
    function_id = checks.function_for(sample.name)
    try:
        answer, output = sam.invoke(function_id, copy)
        problem = checks.check_invoke(sample.name, answer)
    except (SamLocalError, subprocess.TimeoutExpired) as exc:
        problem, output = str(exc).splitlines()[0], str(exc)
    if sam.stopping:  # interrupted: the invoke was stopped, not answered
        return None, output
    verdict = "ok" if problem is None else f"FAILED: {problem}"
    log(f"sam local invoke {function_id:<15} {sample.name:<32} {verdict} ({time.monotonic() - started:.1f}s)")
    return problem, output


def invoke_samples(sam: Sam, samples: list[Path], work: Path, jobs: int) -> list[str]:
    """Every sample through `sam local invoke`, `jobs` at a time.

    Each invoke rebuilds SAM's image (the layer is defined in the template); concurrent invokes share one
    build through SAM's own build lock. The expected answers do not depend on the order.
    """
    directory = work / "events"
    directory.mkdir(parents=True, exist_ok=True)
    failures = []
    with (work / "invoke.log").open("w") as log_file, ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(invoke_one, sam, sample, directory): sample.name for sample in samples}
        try:
            for future in as_completed(futures):
                problem, output = future.result()
                log_file.write(output)
                if problem is not None:
                    failures.append(f"{futures[future]}: {problem}")
        except BaseException:
            sam.stopping = True
            pool.shutdown(wait=False, cancel_futures=True)
            sam.stop_children()
            raise
    return failures


def start_api_checks(sam: Sam, stack: Stack, log_path: Path) -> list[str]:
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        process = sam.start_api(port, log_file)
    try:
        log(f"sam local start-api on {api} (warm containers, log: {log_path})")
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while not port_in_use(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SamLocalError(f"sam local start-api did not listen:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        failures = []
        waiting_for = []
        for what, expected, got, user in checks.api_checks(api):
            ok = got[0] == expected[0] and checks.matches(expected[1], got[1])
            log(f"start-api {what:<36} {'ok' if ok else 'FAILED'}: {got[0]} {got[1]}")
            if not ok:
                failures.append(f"start-api {what}: expected {expected}, got {got}")
            elif user:
                waiting_for.append((what, user))
        failures += wait_for_replies(stack, waiting_for)
        forged = checks.stored_mentions(stack.url("DYNAMODB_PORT"), checks.FORGED_USER)
        log(f"forged POST stored {forged} item(s){'' if forged == 0 else ': FAILED'}")
        if forged:
            failures.append(f"the forged POST stored {forged} item(s)")
        return failures
    finally:
        stop_group(process)


def wait_for_replies(stack: Stack, waiting_for: list[tuple[str, str]]) -> list[str]:
    failures = []
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    for what, user in waiting_for:
        sent: list[dict[str, Any]] = []
        while not sent and time.monotonic() < deadline:
            sent = checks.replies(stack.url("SANDBOX_PORT"), user)
            if not sent:
                time.sleep(0.3)
        provider = sent[0].get("provider", "") if sent else ""
        log(f"reply to {what:<30} {'reached the sandbox ' + provider if sent else 'FAILED: no reply'}")
        if not sent:
            failures.append(f"no reply reached the sandbox for {what} within {REPLY_TIMEOUT_S}s")
    return failures


def run(sam_path: Path, cache: Path, jobs: int, cleanup: contextlib.ExitStack) -> list[str]:
    cleanup.enter_context(exclusive(cache / "sam-local.lock"))
    phase = time.monotonic()
    ensure_packages(log)
    daemon = Dockerd(cache / "docker", log)
    cleanup.callback(daemon.stop)
    daemon.start()
    image = ensure_base_image(daemon, cache, log)
    log(f"docker ready with {image} ({time.monotonic() - phase:.0f}s)")
    work = Path(tempfile.mkdtemp(prefix="sam-local-"))
    cleanup.callback(shutil.rmtree, work, True)
    outcome = {"passed": False}
    logs = ("invoke.log", "start-api.log", "stack/stack.log")
    cleanup.callback(keep_logs_unless_passed, work, logs, outcome, "sam-local-logs-", log)  # before the rmtree
    stack = Stack(work / "stack")
    cleanup.callback(stack.stop)
    stack.start()
    sam = Sam(sam_path, sam_environment(daemon, stack, work), image, work)
    cleanup.callback(sam.stop_children)
    phase = time.monotonic()
    build_root = cache / "build" / hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    sam.template = build([str(sam_path)], build_root, python313_path(sam.env), log)
    log(f"built {sam.template} ({time.monotonic() - phase:.0f}s)")
    env = env_json(stack.url("DYNAMODB_PORT"), stack.url("MOTO_PORT"), stack.url("SANDBOX_PORT"))
    sam.env_file.write_text(json.dumps(env, indent=2))
    log(f"env vars for the stack: {sam.env_file}")
    samples = sample_events()
    phase = time.monotonic()
    failures = invoke_samples(sam, samples, work, jobs)
    log(f"{len(samples)} sample events invoked, {jobs} at a time ({time.monotonic() - phase:.0f}s)")
    phase = time.monotonic()
    failures += start_api_checks(sam, stack, work / "start-api.log")
    log(f"start-api checked ({time.monotonic() - phase:.0f}s)")
    outcome["passed"] = not failures
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sam", type=Path, required=True, help="the pinned sam (make sam-cli prints it)")
    parser.add_argument("--cache-dir", type=Path, required=True, help="base image, docker data root, x86_64 build")
    parser.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("SAM_LOCAL_JOBS") or 3),
        help="concurrent `sam local invoke`s (default 3, or SAM_LOCAL_JOBS)",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("error: make sam-local runs a private dockerd and needs root (CI runs it as root)", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        with cleanup_always() as cleanup:
            failures = run(args.sam, args.cache_dir, args.jobs, cleanup)
    except KeyboardInterrupt:
        log("interrupted: everything that was started is stopped")
        return 130
    except (SamLocalError, DockerHostError, BuildError, subprocess.TimeoutExpired) as exc:
        log(f"error: {exc}")
        return 1
    elapsed = time.monotonic() - started
    if failures:
        log(f"FAILED ({len(failures)}) after {elapsed:.0f}s:\n  " + "\n  ".join(failures))
        return 1
    log(f"PASSED: every sample event through sam local invoke, and start-api, in {elapsed:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
