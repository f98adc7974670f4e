"""`make deploy-local`: the steps, each timed, and the clean-up of everything they started.

    python -m deploy_local --sam <pinned sam> --ministack-python <ministack venv python> --cache-dir <dir>

1. the emulator shims' tests (tests/emulator, with ministack's Python);
2. the emulator (deploy_local.emulator: ministack with AUTH=true) and the sandbox providers, on free loopback
   ports;
3. `sam build` of template.yaml with x86_64 wheels (this machine is x86_64; the template stays arm64);
4. `sam deploy` of that build with GraphApiBase/VonageApiBase pointing at the sandbox; the sandbox secrets
   put into the two secrets the stack created;
5. the checks of deploy_local/checks.py, `make smoke` and the e2e suite with AWS_SAM_STACK_NAME;
6. `tools.redrive` against the deployed failure queue;
7. `sam deploy` again with a changed parameter (an update): the stack's data and secrets survive;
8. `sam delete`; the resources with DeletionPolicy Retain stay.

Only 127.0.0.1 is ever contacted (and PyPI by `sam build`'s pip, as for any build). SAM CLI runs with a
throwaway HOME: no AWS profile of the user is read, and its weekly PyPI version check is marked done.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from devkit.http_client import http
from devkit.local_aws import REGION
from devkit.sandbox_secrets import SANDBOX_API_SECRET, SANDBOX_APP_ID
from devkit.teardown import cleanup_always, keep_logs_unless_passed
from local.sandbox import Sandbox, SandboxServer
from local.services import LocalStackError, end_process, free_port, wait_for_port
from local.template import ROOT
from sam_local_docker.build import BuildError, build, python313_path

STACK = "messenger-webhook-local"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}  # ministack's root caller
EMULATOR_START_TIMEOUT_S = 60
# The update deploy changes one parameter; the function's environment must show it afterwards.
UPDATE_PARAMETER = ("LogLevel", "POWERTOOLS_LOG_LEVEL", "DEBUG")


class DeployLocalError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[deploy-local] {time.strftime('%H:%M:%S')} {message}", flush=True)


class Steps:
    """Times each step; the summary lists them all (also after a failure)."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float, str]] = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        log(f"--- {name}")
        started = time.monotonic()
        outcome = "FAILED"
        try:
            yield
            outcome = "ok"
        finally:
            elapsed = time.monotonic() - started
            self.times.append((name, elapsed, outcome))
            log(f"--- {name}: {outcome} ({elapsed:.1f}s)")

    def summary(self) -> str:
        lines = [f"  {name:<80} {elapsed:6.1f}s  {outcome}" for name, elapsed, outcome in self.times]
        return "\n".join(["step times:", *lines, f"  {'total':<80} {sum(t for _, t, _ in self.times):6.1f}s"])


class Emulator:
    """deploy_local.emulator in ministack's virtualenv, on a free loopback port, enforcing IAM (AUTH=true)."""

    def __init__(self, python: Path, work: Path) -> None:
        self.python = python
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "emulator.log"
        self.tmp = work / "emulator-tmp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(self.tmp),
            "TMPDIR": str(self.tmp),  # its pid file and the functions' unpacked code
            "GATEWAY_PORT": str(self.port),
            "BIND_HOST": "127.0.0.1",
            "AUTH": "true",
            "MINISTACK_REGION": REGION,
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        log(f"emulator on {self.endpoint} (log: {self.log_path})")
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [str(self.python), "-m", "deploy_local.emulator"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_port(self.port, self.process, "the emulator", EMULATOR_START_TIMEOUT_S)
            status = http("GET", f"{self.endpoint}/_ministack/health", timeout=10)[0]
        except (LocalStackError, OSError) as exc:
            raise DeployLocalError(f"the emulator did not start ({exc}):\n{self.log_tail()}") from None
        if status != 200:
            raise DeployLocalError(f"the emulator's health answered {status}:\n{self.log_tail()}")

    def log_tail(self, size: int = 6000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-size:]
        return ""

    def stop(self) -> None:
        if self.process is not None:
            log(f"stopping the emulator and its functions (process group {self.process.pid})")
            end_process(self.process.pid, group=True, timeout=20)
            self.process.wait(timeout=10)

    def aws_env(self) -> dict[str, str]:
        """What a boto3 or SAM CLI process needs to talk to the emulator and to nothing else."""
        return {
            **CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }


def without_aws(env: dict[str, str]) -> dict[str, str]:
    """The shell's environment minus its AWS settings (a profile or endpoint there must not leak in)."""
    return {k: v for k, v in env.items() if not k.startswith("AWS_")}


class Sam:
    """The pinned SAM CLI against the emulator, with a throwaway HOME (see the module docstring)."""

    def __init__(self, sam: Path, emulator: Emulator, work: Path) -> None:
        self.sam = sam
        self.home = work / "sam-home"
        (self.home / ".aws-sam").mkdir(parents=True, exist_ok=True)
        (self.home / ".aws-sam" / "metadata.json").write_text(json.dumps({"lastVersionCheck": time.time() + 10**7}))
        self.env = {
            **without_aws(os.environ),
            **emulator.aws_env(),
            "HOME": str(self.home),
            "SAM_CLI_TELEMETRY": "0",
        }

    def run(self, *args: str, timeout: float = 600) -> str:
        command = [str(self.sam), *args]
        log("$ sam " + " ".join(args))
        result = subprocess.run(
            command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise DeployLocalError(f"sam {args[0]} failed (exit {result.returncode}):\n{output[-5000:]}")
        return output

    def deploy(self, template: Path, parameters: dict[str, str]) -> None:
        overrides = [f"{key}={value}" for key, value in parameters.items()]
        self.run(
            "deploy",
            "--template-file",
            str(template),
            "--stack-name",
            STACK,
            "--region",
            REGION,
            "--resolve-s3",
            "--capabilities",
            "CAPABILITY_IAM",
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
            "--parameter-overrides",
            *overrides,
        )

    def delete(self) -> None:
        self.run("delete", "--stack-name", STACK, "--region", REGION, "--no-prompts")


def run_project(args: list[str], env: dict[str, str], what: str, timeout: float = 900) -> str:
    """A project command (make smoke, pytest, tools.redrive) against the deployed stack; its output is logged."""
    log("$ " + " ".join(args))
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    output = result.stdout + result.stderr
    print(output.rstrip(), flush=True)
    if result.returncode != 0:
        raise DeployLocalError(f"{what} failed (exit {result.returncode})")
    return output


def project_env(emulator: Emulator, **extra: str) -> dict[str, str]:
    """The environment of a project tool run against the deployed stack, as an operator would run it."""
    return {**without_aws(os.environ), **emulator.aws_env(), "AWS_SAM_STACK_NAME": STACK, **extra}


def deploy_and_check(args: argparse.Namespace, steps: Steps, cleanup: contextlib.ExitStack) -> None:
    from deploy_local import checks  # imports the layer (boto3, the codec): after the argument parsing

    work = Path(tempfile.mkdtemp(prefix="deploy-local-"))
    cleanup.callback(shutil.rmtree, work, True)
    outcome = {"passed": False}
    cleanup.callback(keep_logs_unless_passed, work, ("emulator.log",), outcome, "deploy-local-logs-", log)

    with steps.step("emulator shim tests (tests/emulator, ministack's Python)"):
        shim_tests = [str(args.ministack_python), "-m", "pytest", "--noconftest", "-q", "-p", "no:cacheprovider"]
        run_project([*shim_tests, "tests/emulator"], without_aws(dict(os.environ)), "the emulator shim tests")

    emulator = Emulator(args.ministack_python, work)
    sandbox = Sandbox(callback_delay_s=0.05, log=lambda _message: None)
    with steps.step("start the emulator (ministack, AUTH=true) and the sandbox providers"):
        cleanup.callback(emulator.stop)
        emulator.start()
        server = SandboxServer(free_port(), sandbox)
        server.start()
        cleanup.callback(server.stop)
        sandbox_url = f"http://127.0.0.1:{server.server_address[1]}"
        log(f"sandbox providers on {sandbox_url}")

    with steps.step("sam build (template.yaml as it is, x86_64 wheels)"):
        env = python313_path({**without_aws(dict(os.environ)), "SAM_CLI_TELEMETRY": "0"})
        build_root = args.cache_dir / "build" / hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
        built = build([str(args.sam)], build_root, env, log, template=ROOT / "template.yaml")

    sam = Sam(args.sam, emulator, work)
    parameters = {"Stage": "dev", "GraphApiBase": sandbox_url, "VonageApiBase": sandbox_url}
    with steps.step("sam deploy (create the stack)"):
        sam.deploy(built, parameters)
    aws = checks.Aws(emulator.endpoint, CREDENTIALS)
    stack = checks.DeployedStack(aws, STACK).refresh()
    sandbox.webhook_base = stack.outputs["HttpApiUrl"].rstrip("/")  # its callbacks go to the deployed API

    with steps.step("put the sandbox secrets into the stack's secrets"):
        checks.put_sandbox_secrets(stack)
    with steps.step("every template resource created, every output reachable"):
        count = checks.resources_created(stack, parameters)
        checks.outputs_reachable(stack)
        log(f"{count} resources of template.yaml created; {len(stack.outputs)} outputs reachable")
    with steps.step("IAM enforced (a principal without a policy is refused)"):
        checks.iam_enforced(stack)
    with steps.step("dashboard and alarms present"):
        log(f"{checks.dashboard_and_alarms(stack)} alarms and the dashboard present")
    with steps.step("make smoke"):
        run_project(["make", "--no-print-directory", "smoke"], project_env(emulator), "make smoke")
    with steps.step("make connect against the deployed stack, twice (the second changes nothing), then --check"):
        connect_env = project_env(
            emulator,
            GRAPH_API_BASE=sandbox_url,
            VONAGE_API_BASE=sandbox_url,
            META_APP_ID=str(SANDBOX_APP_ID),
            VONAGE_API_SECRET=SANDBOX_API_SECRET,
        )
        connect = [sys.executable, "-m", "tools.connect"]
        run_project([*connect, "--yes"], connect_env, "make connect")
        if "nothing to change" not in run_project([*connect, "--yes"], connect_env, "make connect (again)"):
            raise DeployLocalError("a second make connect changed something: it is not idempotent")
        run_project([*connect, "--check"], connect_env, "make connect --check")
    with steps.step("e2e suite with AWS_SAM_STACK_NAME"):
        e2e = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=5", "tests/e2e"]
        output = run_project(e2e, project_env(emulator), "the e2e suite")
        if " passed" not in output or " failed" in output:
            raise DeployLocalError("the e2e suite ran no test against the deployed stack")
    with steps.step("signed Meta and Vonage messages answered once; forged ones refused"):
        kept = checks.messages_answered_once(stack, sandbox)

    with steps.step("a failing reply reaches the failure queue; tools.redrive answers it"):
        user = checks.transient_failure_queued(stack, sandbox)
        function_env = checks.function_environment(stack, "ReplyFunction")
        env = project_env(emulator, **{**function_env, "POWERTOOLS_TRACE_DISABLED": "1"})
        redrive = [sys.executable, "-m", "tools.redrive", "--queue-url", stack.outputs["ReplyFailureQueueUrl"]]
        checks.redriven(stack, sandbox, user, run_project(redrive, env, "tools.redrive"))

    table = stack.table
    parameter, variable, value = UPDATE_PARAMETER
    with steps.step(f"sam deploy (update: {parameter}={value})"):
        sam.deploy(built, {**parameters, parameter: value})
        stack.refresh()
        for function_id in ("WebhookFunction", "ReplyFunction"):
            got = checks.function_environment(stack, function_id).get(variable)
            if got != value:
                raise DeployLocalError(f"after the update {function_id} has {variable}={got}, not {value}")
    with steps.step("after the update: data and secrets kept, smoke passes, a new message answered once"):
        checks.survived_update(stack, kept, table)
        run_project(["make", "--no-print-directory", "smoke"], project_env(emulator), "make smoke")
        checks.messages_answered_once(stack, sandbox)

    secrets = [stack.outputs["MetaSecretArn"], stack.outputs["VonageSecretArn"]]
    with steps.step("sam delete (the table and the secrets are retained)"):
        sam.delete()
        checks.retained_after_delete(aws, STACK, table, secrets)
    outcome["passed"] = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sam", type=Path, required=True, help="the pinned sam (make sam-cli prints it)")
    parser.add_argument("--ministack-python", type=Path, required=True, help="python of ministack's virtualenv")
    parser.add_argument("--cache-dir", type=Path, required=True, help="the x86_64 build, kept between runs")
    args = parser.parse_args(argv)
    steps = Steps()
    started = time.monotonic()
    code = 1
    try:
        with cleanup_always() as cleanup:
            deploy_and_check(args, steps, cleanup)
        code = 0
    except KeyboardInterrupt:
        log("interrupted: everything that was started is stopped")
        code = 130
    except (DeployLocalError, BuildError, subprocess.TimeoutExpired, AssertionError) as exc:
        log(f"FAILED: {exc}")
    print(steps.summary(), flush=True)
    verdict = "PASSED" if code == 0 else "FAILED"
    log(f"{verdict}: make deploy-local in {time.monotonic() - started:.0f}s")
    return code
