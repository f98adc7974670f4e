"""The whole local stack in one process: services, HTTP API, stream poller and sandbox providers.

Names match events/env.json (used by `sam local invoke` where Docker exists): table `messenger-events`,
secrets `local/meta` and `local/vonage`, and the on-failure queue named after its logical id.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.http_api import HttpApiServer, LambdaFunction
from local.poller import CheckpointStore, StreamPoller
from local.sandbox import Sandbox, SandboxServer
from local.services import (
    LOCAL_CREDENTIALS,
    REGION,
    LocalStackError,
    Service,
    client,
    create_events_table,
    port_in_use,
    seed_secrets,
    start_dynamodb_local,
    start_moto,
)
from local.streams import StreamReader
from local.template import (
    ROOT,
    function_environment,
    function_spec,
    http_routes,
    stream_function_id,
    stream_settings,
)

TABLE_NAME = "messenger-events"
SECRET_NAMES = {"meta": "local/meta", "vonage": "local/vonage"}
Log = Callable[[str], None]


class AlreadyRunningError(LocalStackError):
    pass


@dataclass(frozen=True)
class Ports:
    api: int = 3000
    dynamodb: int = 8000
    moto: int = 5000
    sandbox: int = 3001

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Ports:
        env = dict(os.environ if env is None else env)

        def port(name: str, default: int) -> int:
            raw = env.get(name) or str(default)
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise LocalStackError(f"{name} must be a TCP port number, got {raw!r}")
            return int(raw)

        return cls(port("PORT", 3000), port("DYNAMODB_PORT", 8000), port("MOTO_PORT", 5000),
                   port("SANDBOX_PORT", 3001))

    def named(self) -> dict[str, int]:
        return {"PORT": self.api, "DYNAMODB_PORT": self.dynamodb, "MOTO_PORT": self.moto,
                "SANDBOX_PORT": self.sandbox}


def state_dir() -> Path:
    return Path(os.environ.get("LOCAL_STATE_DIR") or ROOT / ".local")


def stack_info_file(api_port: int) -> Path:
    """Where a running stack writes its URLs (read by `make chat`)."""
    return state_dir() / f"stack-{api_port}.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalStack:
    def __init__(self, ports: Ports, *, log: Log = print, poll_interval_s: float = 0.25,
                 retry_delay_s: float = 0.5, callback_delay_s: float = 0.3) -> None:
        self.ports = ports
        self.log = log
        self.poll_interval_s = poll_interval_s
        self.retry_delay_s = retry_delay_s
        self.callback_delay_s = callback_delay_s
        self.state = state_dir()
        # 127.0.0.1 by default; LOCAL_BIND_HOST=0.0.0.0 lets `sam local` containers reach moto, the API and the sandbox.
        self.bind_host = os.environ.get("LOCAL_BIND_HOST") or "127.0.0.1"
        self.pid_file = self.state / f"stack-{ports.api}.pid"
        self.services: list[Service] = []
        self.functions: dict[str, LambdaFunction] = {}
        self.http: HttpApiServer | None = None
        self.sandbox_server: SandboxServer | None = None
        self.poller: StreamPoller | None = None
        self.stream_arn = ""
        self.queue_url = ""
        self.reply_id = stream_function_id()
        self._poller_lock = threading.Lock()
        self._stopped = False

    # -- URLs -------------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sandbox}"

    @property
    def dynamodb_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dynamodb}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.moto}"

    # -- start / stop -----------------------------------------------------------------------------

    def check_not_running(self) -> None:
        if self.pid_file.exists():
            with contextlib.suppress(ValueError, OSError):
                pid = int(self.pid_file.read_text().strip())
                if pid != os.getpid() and _pid_alive(pid):
                    raise AlreadyRunningError(
                        f"the local stack is already running (pid {pid}, {self.pid_file}); stop it with Ctrl-C "
                        "in its terminal, or use other ports (PORT, DYNAMODB_PORT, MOTO_PORT, SANDBOX_PORT)")
        busy = [f"{name}={port}" for name, port in self.ports.named().items() if port_in_use(port)]
        if busy:
            raise AlreadyRunningError(
                f"port(s) already in use: {', '.join(busy)}. Is another `make dev` (or something else) running? "
                "Stop it, or choose other ports via PORT, DYNAMODB_PORT, MOTO_PORT, SANDBOX_PORT.")

    def start(self) -> None:
        self.check_not_running()
        self.state.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(os.getpid()))
        try:
            self._start_services()
            self._configure_environment()
            self._start_servers()
            self.start_poller(reload=False)
            stack_info_file(self.ports.api).write_text(json.dumps(self.info(), indent=2))
        except BaseException:
            self.stop()
            raise

    def _start_services(self) -> None:
        self.log(f"starting DynamoDB Local on {self.dynamodb_url} (log: {self.state / 'dynamodb.log'})")
        with (self.state / "dynamodb.log").open("ab") as log_file:
            self.services.append(start_dynamodb_local(self.ports.dynamodb, log=log_file))
        self.log(f"starting moto server (Secrets Manager, SQS) on {self.moto_url} (log: {self.state / 'moto.log'})")
        with (self.state / "moto.log").open("ab") as log_file:
            self.services.append(start_moto(self.ports.moto, log=log_file, host=self.bind_host))
        dynamodb = client("dynamodb", self.dynamodb_url)
        self.stream_arn = create_events_table(dynamodb, TABLE_NAME)
        self.log(f"created table {TABLE_NAME} from template.yaml (stream {self.stream_arn.rsplit('/', 1)[-1]})")
        seed_secrets(client("secretsmanager", self.moto_url), SECRET_NAMES)
        self.log(f"seeded secrets {SECRET_NAMES['meta']} and {SECRET_NAMES['vonage']} "
                 "from events/sandbox-secrets.json")
        queue_name = stream_settings(self.reply_id).on_failure_queue or "ReplyFailureQueue"
        self.queue_url = client("sqs", self.moto_url).create_queue(QueueName=queue_name)["QueueUrl"]
        self.log(f"created on-failure queue {queue_name}")

    def environment(self) -> dict[str, str]:
        """Both functions' template environment, resolved to the local stack, plus AWS endpoints."""
        resolve = {
            "EventsTable": TABLE_NAME,
            "MetaSecret": SECRET_NAMES["meta"],
            "VonageSecret": SECRET_NAMES["vonage"],
            "GraphApiBase": self.sandbox_url,
            "VonageApiBase": self.sandbox_url,
            "ReplyFailureQueue": self.queue_url,
            "ReplyFailureQueue.Arn": f"arn:aws:sqs:{REGION}:000000000000:ReplyFailureQueue",
        }
        if os.environ.get("LOG_LEVEL"):
            resolve["LogLevel"] = os.environ["LOG_LEVEL"]
        env: dict[str, str] = {}
        for function_id in {route.function_id for route in http_routes()} | {self.reply_id}:
            for name, value in function_environment(function_id, resolve).items():
                if name in env and env[name] != value:
                    self.log(f"warning: {name} differs between functions; the local stack uses {env[name]!r}")
                    continue
                env[name] = value
        env.update(LOCAL_CREDENTIALS)
        env.update({
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb_url,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.moto_url,
            "AWS_ENDPOINT_URL_SQS": self.moto_url,
            "POWERTOOLS_TRACE_DISABLED": "true",
            # EMF metric blobs on every invocation drown the useful lines; LOCAL_METRICS=1 shows them.
            "POWERTOOLS_METRICS_DISABLED": "false" if os.environ.get("LOCAL_METRICS") else "true",
        })
        return env

    def _configure_environment(self) -> None:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            os.environ.pop(name, None)
        os.environ.update(self.environment())
        function_ids = sorted({route.function_id for route in http_routes()} | {self.reply_id})
        self.functions = {fid: LambdaFunction(function_spec(fid), log=self.log) for fid in function_ids}

    def _start_servers(self) -> None:
        self.http = HttpApiServer(self.ports.api, http_routes(), self.functions, control=self.control, log=self.log,
                                  host=self.bind_host)
        self.http.start()
        sandbox = Sandbox(self.api_url, callback_delay_s=self.callback_delay_s, log=self.log)
        self.sandbox_server = SandboxServer(self.ports.sandbox, sandbox, host=self.bind_host)
        self.sandbox_server.start()

    def start_poller(self, reload: bool = True) -> bool:
        """(Re)start the reply side: a fresh poller from the saved checkpoints; `reload` = a cold start."""
        with self._poller_lock:
            if self.poller is not None:
                self.poller.stop()
                self.log("[poller] stopped (in-flight batch finished and checkpointed)")
                self.poller = None
            reply = self.functions[self.reply_id]
            if not reply.available:
                self.log(f"[poller] {reply.path.relative_to(ROOT)} does not exist yet: the stream is not polled "
                         "(POST /_local/poller/restart once it does)")
                return False
            if reload or reply.module is None:
                reply.load()
            settings = stream_settings(self.reply_id)
            checkpoints = CheckpointStore(self.stream_arn, self.state / f"checkpoints-{self.ports.api}.json")
            reader = StreamReader(client("dynamodbstreams", self.dynamodb_url), self.stream_arn,
                                  settings.starting_position, positions=checkpoints.get(), region=REGION)
            # One function instance per ParallelizationFactor lane: concurrent batches never share one.
            lanes = [reply] + [LambdaFunction(reply.spec, log=self.log, instance=f"lane{i}")
                               for i in range(1, settings.parallelization_factor)]
            self.poller = StreamPoller(
                reader, reply.invoke, settings, checkpoints, on_failure=self._send_to_queue,
                function_arn=reply.arn, poll_interval_s=self.poll_interval_s, retry_delay_s=self.retry_delay_s,
                log=self.log, lane_invoke=lambda lane: lanes[lane].invoke,
            )
            self.poller.start()
            self.log(f"[poller] polling {TABLE_NAME}'s stream for {self.reply_id}: batch {settings.batch_size}, "
                     f"{settings.parallelization_factor} lane(s) per shard, "
                     f"window {settings.batching_window_s:g}s, retries {settings.maximum_retry_attempts}, "
                     f"max age {settings.maximum_record_age_s}s, bisect {settings.bisect_on_error}, "
                     f"{len(settings.filter_patterns)} filter pattern(s), resuming from "
                     f"{len(checkpoints.get())} shard checkpoint(s)")
            return True

    def stop_poller(self) -> None:
        with self._poller_lock:
            if self.poller is not None:
                self.poller.stop()
                self.poller = None
                self.log("[poller] stopped (in-flight batch finished and checkpointed)")

    def _send_to_queue(self, message: dict[str, Any]) -> None:
        client("sqs", self.moto_url).send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            self.stop_poller()
        for server in (self.http, self.sandbox_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        for service in reversed(self.services):
            self.log(f"stopping {service.name}")
            service.stop()
        self.services.clear()
        for path in (self.pid_file, stack_info_file(self.ports.api)):
            with contextlib.suppress(OSError):
                if path == self.pid_file and path.read_text().strip() != str(os.getpid()):
                    continue
                path.unlink()

    # -- information and control ------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(), "api": self.api_url, "sandbox": self.sandbox_url, "dynamodb": self.dynamodb_url,
            "moto": self.moto_url, "table": TABLE_NAME, "secrets": SECRET_NAMES, "queue_url": self.queue_url,
            "stream_arn": self.stream_arn, "region": REGION,
            "service_pids": [service.process.pid for service in self.services],
        }

    def poller_state(self) -> dict[str, Any]:
        poller = self.poller
        if poller is None:
            return {"running": False}
        return {"running": poller.running, "idle": poller.idle, "checkpoints": poller.checkpoints.get(),
                "stats": poller.stats.as_dict()}

    def failures(self) -> list[dict[str, Any]]:
        """Messages on the on-failure queue (peeked: they stay there)."""
        sqs = client("sqs", self.moto_url)
        messages: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(10):
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                        WaitTimeSeconds=0).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                messages.append(json.loads(message["Body"]))
        return messages

    def control(self, method: str, path: str, body: bytes) -> tuple[int, Any] | None:
        if not path.startswith("/_local/"):
            return None
        if path == "/_local/health":
            return 200, {"ok": True, **self.info(), "poller": self.poller is not None and self.poller.running}
        if path == "/_local/poller" and method == "GET":
            return 200, self.poller_state()
        if path == "/_local/poller/restart" and method == "POST":
            started = self.start_poller(reload=True)
            return (200 if started else 409), self.poller_state()
        if path == "/_local/poller/stop" and method == "POST":
            self.stop_poller()
            return 200, self.poller_state()
        if path == "/_local/poller/start" and method == "POST":
            started = self.poller is not None or self.start_poller(reload=False)
            return (200 if started else 409), self.poller_state()
        if path == "/_local/failures" and method == "GET":
            return 200, self.failures()
        return 404, {"message": "Not Found"}

    def banner(self) -> str:
        routes = "\n".join(f"    {r.method:<5} {self.api_url}{r.path}  ({r.function_id})" for r in http_routes())
        poller = "polling" if self.poller is not None else "NOT polling (functions/reply/app.py missing)"
        return (
            "\n"
            "Local stack ready. Ctrl-C stops everything.\n"
            f"  DynamoDB Local  {self.dynamodb_url}  table {TABLE_NAME} (stream {poller})\n"
            f"  moto server     {self.moto_url}  secrets {SECRET_NAMES['meta']}, {SECRET_NAMES['vonage']}; "
            f"on-failure queue {self.queue_url}\n"
            f"  Sandbox         {self.sandbox_url}  Graph POST /v25.0/<page>/messages, Vonage POST /v1/messages;\n"
            f"                  recorded sends: {self.sandbox_url}/_sandbox/requests; faults: "
            "python -m local.sandbox fault meta 5xx\n"
            f"  Stack control   {self.api_url}/_local/poller (state), POST {self.api_url}/_local/poller/restart\n"
            f"  HTTP API        {self.api_url}\n{routes}\n"
            "  Talk to it:     make chat   (or: python -m local.chat --provider vonage)\n"
        )


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
