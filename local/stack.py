"""The whole local stack: services, HTTP API, stream poller and sandbox providers, driven from one process.

Names match events/env.json (used by `sam local invoke` where Docker exists): table `messenger-events`,
secrets `local/meta` and `local/vonage`, and the on-failure queue named after its logical id.

DynamoDB Local keeps its data in `.local/dynamodb-<PORT>/` and the poller its checkpoints in
`.local/checkpoints-<PORT>.json`, so a restart continues where the last run stopped (`reset` starts clean).
`.local/stack-<PORT>.json` names every process the stack started (pid and command line): a stack that was
killed (SIGKILL, a crash) leaves DynamoDB Local and moto running, and the next start ends exactly those.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devkit.local_aws import LOCAL_CREDENTIALS, REGION, client
from devkit.stack_info import stack_info_file, state_dir
from devkit.streams import StreamReader
from local.api_server import HttpApiServer
from local.control import ANY, Answer, Request, Routes
from local.poller import CheckpointStore, StreamPoller
from local.sandbox import Sandbox, SandboxServer
from local.services import (
    LocalStackError,
    Service,
    end_process,
    ensure_events_table,
    port_in_use,
    port_owner,
    process_command,
    seed_secrets,
    start_dynamodb_local,
    start_moto,
)
from local.template import (
    function_environment,
    function_spec,
    http_routes,
    stream_function_id,
    stream_settings,
)
from local.workers import Function, FunctionPool, InProcessFunction, Worker

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

        return cls(port("PORT", 3000), port("DYNAMODB_PORT", 8000), port("MOTO_PORT", 5000), port("SANDBOX_PORT", 3001))

    def named(self) -> dict[str, int]:
        return {"PORT": self.api, "DYNAMODB_PORT": self.dynamodb, "MOTO_PORT": self.moto, "SANDBOX_PORT": self.sandbox}


WORKER_DRAIN_S = 30.0
PORT_RELEASE_S = 10.0


@dataclass(frozen=True)
class Options:
    """How the stack runs; `python -m local` reads them from the environment (see docs/local-stack.md)."""

    poll_interval_s: float = 0.25
    retry_delay_s: float = 0.5
    callback_delay_s: float = 0.3
    callback_time_scale: float = 60.0  # the sandbox's callback retry schedule runs this many times faster
    concurrency: int = 4  # workers per HTTP function (concurrent requests per function)
    reply_concurrency: int = 0  # workers of the reply function; 0 = one per stream lane
    stream_split: int = 1  # virtual child shards per stream shard (local/poller.py: a shard split)
    stream_order: str = "stream"  # the order the poller hands a read's records to the lanes (local/poller.py)
    reset: bool = False  # delete the kept data first
    dynamodb_url: str = ""  # use this running DynamoDB Local instead of starting one (tests)
    sandbox_url: str = ""  # use this running sandbox instead of starting one (its records outlive the stack)
    in_process: bool = False  # functions in this process, one call at a time (bench.cost instruments them)


class LocalStack:
    def __init__(self, ports: Ports, *, log: Log = print, options: Options | None = None) -> None:
        self.ports = ports
        self.log = log
        self.options = options or Options()
        self.state = state_dir()
        # 127.0.0.1 by default; LOCAL_BIND_HOST=0.0.0.0 lets `sam local` containers reach moto, the API and the sandbox.
        self.bind_host = os.environ.get("LOCAL_BIND_HOST") or "127.0.0.1"
        self.state_file = stack_info_file(ports.api)
        self.data_dir = self.state / f"dynamodb-{ports.api}"
        self.checkpoint_file = self.state / f"checkpoints-{ports.api}.json"
        self.services: list[Service] = []
        self.functions: dict[str, Function] = {}
        self.http: HttpApiServer | None = None
        self.sandbox_server: SandboxServer | None = None
        self.poller: StreamPoller | None = None
        self.stream_arn = ""
        self.queue_url = ""
        self.reply_id = stream_function_id()
        self.ready = threading.Event()
        self.parts: dict[str, str] = {"dynamodb": "stopped", "moto": "stopped", "sandbox": "stopped"}
        self._processes: list[dict[str, Any]] = []
        self._state_lock = threading.Lock()
        self._poller_lock = threading.Lock()
        self._stopped = False

    # -- URLs -------------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def sandbox_url(self) -> str:
        return self.options.sandbox_url.rstrip("/") or f"http://127.0.0.1:{self.ports.sandbox}"

    @property
    def dynamodb_url(self) -> str:
        return self.options.dynamodb_url.rstrip("/") or f"http://127.0.0.1:{self.ports.dynamodb}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.moto}"

    # -- leftovers of a run that did not stop ------------------------------------------------------

    def recover(self) -> None:
        """End what a killed stack on these ports left running (only processes it recorded), then check ports."""
        saved = self._read_state()
        if saved:
            pid = int(saved.get("pid", 0))
            if pid != os.getpid() and saved.get("command") and process_command(pid) == saved["command"]:
                raise AlreadyRunningError(
                    f"the local stack is already running (pid {pid}, {self.state_file}); stop it with Ctrl-C "
                    "in its terminal, or use other ports (PORT, DYNAMODB_PORT, MOTO_PORT, SANDBOX_PORT)"
                )
            self._end_leftovers(saved)
            with contextlib.suppress(OSError):
                self.state_file.unlink()
        ended = time.monotonic() + (PORT_RELEASE_S if saved else 0)
        while any(port_in_use(port) for port in self._own_ports().values()) and time.monotonic() < ended:
            time.sleep(0.2)  # a process that was just ended may hold its port for a moment
        busy = [
            f"{name}={port} is held by {port_owner(port)}"
            for name, port in self._own_ports().items()
            if port_in_use(port)
        ]
        if busy:
            raise AlreadyRunningError(
                f"port in use: {'; '.join(busy)}. That is not a leftover of this stack (none is recorded in "
                f"{self.state_file}): stop it, or choose other ports via PORT, DYNAMODB_PORT, MOTO_PORT, "
                "SANDBOX_PORT."
            )

    def _own_ports(self) -> dict[str, int]:
        ports = self.ports.named()
        if self.options.dynamodb_url:
            ports.pop("DYNAMODB_PORT")
        if self.options.sandbox_url:
            ports.pop("SANDBOX_PORT")
        return ports

    def _end_leftovers(self, saved: dict[str, Any]) -> None:
        # Workers first: one may still be finishing an invocation (and writing to DynamoDB Local).
        for entry in sorted(saved.get("processes", []), key=lambda e: not e.get("worker")):
            pid, name, command = int(entry["pid"]), str(entry["name"]), str(entry["command"])
            now = process_command(pid)
            if now is None:
                continue
            if now != command:
                self.log(f"pid {pid} ({name} of the previous run) now runs something else; left alone")
                continue
            if entry.get("worker"):
                self.log(f"waiting for {name} (pid {pid}) of the previous run to finish its invocation")
                deadline = time.monotonic() + WORKER_DRAIN_S
                while process_command(pid) == command and time.monotonic() < deadline:
                    time.sleep(0.1)
                if process_command(pid) == command:
                    end_process(pid, group=False)
                continue
            self.log(
                f"ending {name} (pid {pid}) left running by the previous stack (pid {saved.get('pid')}), "
                "which did not stop cleanly"
            )
            end_process(pid, group=bool(entry.get("group")))

    def _read_state(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.state_file.read_text())
            if isinstance(data, dict):
                return data
        return {}

    def _track(self, name: str, pid: int, args: Any, *, group: bool, worker: bool = False) -> None:
        command = " ".join(str(a) for a in args)
        with self._state_lock:
            self._processes = [e for e in self._processes if process_command(int(e["pid"])) is not None]
            self._processes.append({"name": name, "pid": pid, "command": command, "group": group, "worker": worker})
        self._write_state()

    def _track_worker(self, worker: Worker) -> None:
        self._track(f"{worker.spec.function_id} worker", worker.pid, worker.process.args, group=False, worker=True)

    def _write_state(self) -> None:
        with self._state_lock:
            data = {
                **self.info(),
                "ready": self.ready.is_set(),
                "command": process_command(os.getpid()),
                "processes": self._processes,
            }
            tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(self.state_file)

    # -- start / stop -----------------------------------------------------------------------------

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.recover()
        self._write_state()
        try:
            if self.options.reset:
                self.reset_data()
            self._start_servers()
            pools = self._begin_functions()  # the imports overlap the services' start-up
            self._start_services()
            for pool in pools:
                pool.wait_ready()
            self.start_poller(reload=False)
            self.ready.set()
            self._write_state()
        except BaseException:
            self.stop()
            raise

    def reset_data(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.checkpoint_file.unlink()
        self.log(f"reset: deleted the kept table data ({self.data_dir.name}) and the poller's checkpoints")

    def _start_services(self) -> None:
        """DynamoDB Local and moto, started side by side; then the table, secrets and queue."""
        errors: list[BaseException] = []

        def start_moto_server() -> None:
            try:
                with (self.state / "moto.log").open("ab") as log_file:
                    self._add_service(start_moto(self.ports.moto, log=log_file, host=self.bind_host))
                self.parts["moto"] = "up"
            except BaseException as exc:  # noqa: BLE001 - re-raised on the starting thread
                errors.append(exc)

        self.parts["moto"] = "starting"
        self.log(f"starting moto server (Secrets Manager, SQS) on {self.moto_url} (log: {self.state / 'moto.log'})")
        moto = threading.Thread(target=start_moto_server, name="start-moto")
        moto.start()
        try:
            if self.options.dynamodb_url:
                self.log(f"using the DynamoDB Local at {self.dynamodb_url}")
            else:
                self.parts["dynamodb"] = "starting"
                self.log(
                    f"starting DynamoDB Local on {self.dynamodb_url}, data in {self.data_dir} "
                    f"(log: {self.state / 'dynamodb.log'})"
                )
                with (self.state / "dynamodb.log").open("ab") as log_file:
                    service = start_dynamodb_local(
                        self.ports.dynamodb, log=log_file, db_path=self.data_dir, host=self.bind_host
                    )
                self.log(
                    "DynamoDB Local's writes are not fsynced (libeatmydata; LOCAL_DYNAMODB_FSYNC=1 keeps fsync)"
                    if service.fsync_skipped
                    else "DynamoDB Local fsyncs every write (on a slow disk, eatmydata skips that: docs/local-stack.md)"
                )
                self._add_service(service)
            self.parts["dynamodb"] = "up"
        finally:
            moto.join()
        if errors:
            raise errors[0]
        self.stream_arn, created = ensure_events_table(client("dynamodb", self.dynamodb_url), TABLE_NAME)
        stream = self.stream_arn.rsplit("/", 1)[-1]
        self.log(
            f"created table {TABLE_NAME} from template.yaml (stream {stream})"
            if created
            else f"kept table {TABLE_NAME} from the last run (stream {stream}); `make dev RESET=1` starts clean"
        )
        seed_secrets(client("secretsmanager", self.moto_url), SECRET_NAMES)
        self.log(f"seeded secrets {SECRET_NAMES['meta']} and {SECRET_NAMES['vonage']} from events/sandbox-secrets.json")
        queue_name = stream_settings(self.reply_id).on_failure_queue or "ReplyFailureQueue"
        self.queue_url = client("sqs", self.moto_url).create_queue(QueueName=queue_name)["QueueUrl"]
        self.log(f"created on-failure queue {queue_name}")
        self._write_state()

    def _add_service(self, service: Service) -> None:
        self.services.append(service)
        self._track(service.name, service.process.pid, service.process.args, group=True)

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
        env.update(
            {
                "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url,
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb_url,
                "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.moto_url,
                "AWS_ENDPOINT_URL_SQS": self.moto_url,
                "POWERTOOLS_TRACE_DISABLED": "true",
                # EMF metric blobs on every invocation drown the useful lines; LOCAL_METRICS=1 shows them.
                "POWERTOOLS_METRICS_DISABLED": "false" if os.environ.get("LOCAL_METRICS") else "true",
            }
        )
        return env

    def _worker_environment(self) -> dict[str, str]:
        dropped = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")
        base = {k: v for k, v in os.environ.items() if k not in dropped}
        return {**base, **self.environment()}

    def _pool(self, function_id: str) -> Function:
        spec = function_spec(function_id)
        if self.options.in_process:
            os.environ.update(self._worker_environment())
            return InProcessFunction(spec, log=self.log)
        if function_id == self.reply_id:
            lanes = stream_settings(function_id).parallelization_factor * self.options.stream_split
            size = self.options.reply_concurrency or lanes
        else:
            size = self.options.concurrency
        return FunctionPool(spec, self._worker_environment(), size=size, log=self.log, on_spawn=self._track_worker)

    def _begin_functions(self) -> list[Function]:
        """Start every function's first worker (each imports its function once); the caller waits for them."""
        function_ids = sorted({route.function_id for route in http_routes()} | {self.reply_id})
        self.functions.update({fid: self._pool(fid) for fid in function_ids})
        pools = [pool for pool in self.functions.values() if pool.available]
        for pool in pools:
            pool.start()
        return pools

    def _start_servers(self) -> None:
        self.http = HttpApiServer(
            self.ports.api,
            http_routes(),
            self.functions,
            control=self.control,
            log=self.log,
            host=self.bind_host,
            ready=self.ready,
        )
        self.http.start()
        if self.options.sandbox_url:
            self.parts["sandbox"] = f"external ({self.sandbox_url})"
            return
        sandbox = Sandbox(
            self.api_url,
            callback_delay_s=self.options.callback_delay_s,
            log=self.log,
            retry_time_scale=self.options.callback_time_scale,
        )
        self.sandbox_server = SandboxServer(self.ports.sandbox, sandbox, host=self.bind_host)
        self.sandbox_server.start()
        self.parts["sandbox"] = "up"

    def start_poller(self, reload: bool = True) -> bool:
        """(Re)start the reply side: a fresh poller from the saved checkpoints; `reload` = a cold start."""
        with self._poller_lock:
            if self.poller is not None:
                self.poller.stop()
                self.log("[poller] stopped (in-flight batch finished and checkpointed)")
                self.poller = None
            reply = self.functions[self.reply_id]
            if not reply.available:
                self.log(
                    f"[poller] {reply.spec.code_uri}/{reply.spec.module_file} does not exist yet: the stream is "
                    "not polled (POST /_local/poller/restart once it does)"
                )
                return False
            if reload or reply.state != "ready":
                reply.stop()
                reply = self.functions[self.reply_id] = self._pool(self.reply_id)
                reply.start()
                reply.wait_ready()
            settings = stream_settings(self.reply_id)
            checkpoints = CheckpointStore(self.stream_arn, self.checkpoint_file)
            reader = StreamReader(
                client("dynamodbstreams", self.dynamodb_url),
                self.stream_arn,
                settings.starting_position,
                positions=checkpoints.get(),
                region=REGION,
            )
            # The pool has a worker per lane (of every virtual child shard): concurrent batches never share one.
            self.poller = StreamPoller(
                reader,
                reply.invoke,
                settings,
                checkpoints,
                on_failure=self._send_to_queue,
                function_arn=reply.arn,
                poll_interval_s=self.options.poll_interval_s,
                retry_delay_s=self.options.retry_delay_s,
                log=self.log,
                split=self.options.stream_split,
                order=self.options.stream_order,
            )
            self.poller.start()
            split = f", split into {self.poller.split} child shards" if self.poller.split > 1 else ""
            order = f", records handed out {self.poller.order}" if self.poller.order != "stream" else ""
            self.log(
                f"[poller] polling {TABLE_NAME}'s stream for {self.reply_id}: batch {settings.batch_size}, "
                f"{settings.parallelization_factor} lane(s) per shard (by full item key){split}{order}, "
                f"window {settings.batching_window_s:g}s, retries {settings.maximum_retry_attempts}, "
                f"max age {settings.maximum_record_age_s}s, bisect {settings.bisect_on_error}, "
                f"{len(settings.filter_patterns)} filter pattern(s), resuming from "
                f"{len(checkpoints.get())} shard checkpoint(s)"
            )
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
        self.ready.clear()
        with contextlib.suppress(Exception):
            self.stop_poller()
        for server in (self.http, self.sandbox_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        for pool in self.functions.values():
            with contextlib.suppress(Exception):
                pool.stop()
        for service in reversed(self.services):
            self.log(f"stopping {service.name}")
            service.stop()
        self.services.clear()
        with contextlib.suppress(OSError):
            if int(self._read_state().get("pid", 0)) == os.getpid():
                self.state_file.unlink()

    # -- information and control ------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "api": self.api_url,
            "sandbox": self.sandbox_url,
            "dynamodb": self.dynamodb_url,
            "moto": self.moto_url,
            "table": TABLE_NAME,
            "secrets": SECRET_NAMES,
            "queue_url": self.queue_url,
            "stream_arn": self.stream_arn,
            "region": REGION,
            "data": str(self.data_dir),
            "service_pids": [service.process.pid for service in self.services],
        }

    def health(self) -> tuple[int, dict[str, Any]]:
        """200 once every part is up (the API then serves requests), else 503; each part's state either way."""
        poller = self.poller
        parts: dict[str, Any] = {
            **self.parts,
            "functions": {fid: pool.describe() for fid, pool in self.functions.items()},
        }
        parts["poller"] = "running" if poller is not None and poller.running else "stopped"
        ready = self.ready.is_set()
        return (200 if ready else 503), {
            "ok": ready,
            "ready": ready,
            "parts": parts,
            **self.info(),
            "poller": parts["poller"] == "running",
        }

    def poller_state(self) -> dict[str, Any]:
        poller = self.poller
        if poller is None:
            return {"running": False}
        return {
            "running": poller.running,
            "idle": poller.idle,
            "checkpoints": poller.checkpoints.get(),
            "stats": poller.stats.as_dict(),
        }

    def failures(self) -> list[dict[str, Any]]:
        """Messages on the on-failure queue (peeked: they stay there)."""
        sqs = client("sqs", self.moto_url)
        messages: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(10):
            batch = sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                messages.append(json.loads(message["Body"]))
        return messages

    def control(self, method: str, path: str, body: bytes) -> tuple[int, Any] | None:
        """The `/_local/...` control API (CONTROL below); None for every other path (the HTTP API's routes)."""
        if not path.startswith("/_local/"):
            return None
        return CONTROL.dispatch(self, Request(method, path, body))

    def _restart_poller(self, _request: Request) -> Answer:
        started = self.start_poller(reload=True)
        return (200 if started else 409), self.poller_state()

    def _stop_poller(self, _request: Request) -> Answer:
        self.stop_poller()
        return 200, self.poller_state()

    def _start_poller(self, _request: Request) -> Answer:
        started = self.poller is not None or self.start_poller(reload=False)
        return (200 if started else 409), self.poller_state()

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


CONTROL = Routes[LocalStack](
    {
        (ANY, "/_local/health"): lambda stack, _request: stack.health(),
        ("GET", "/_local/poller"): lambda stack, _request: (200, stack.poller_state()),
        ("POST", "/_local/poller/restart"): LocalStack._restart_poller,
        ("POST", "/_local/poller/stop"): LocalStack._stop_poller,
        ("POST", "/_local/poller/start"): LocalStack._start_poller,
        ("GET", "/_local/failures"): lambda stack, _request: (200, stack.failures()),
    }
)
