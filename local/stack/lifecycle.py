"""`LocalStack`: the whole local stack (services, HTTP API, stream poller and sandbox providers) driven from one
process; it starts every part in order and stops them all.

DynamoDB Local keeps its data in `.local/dynamodb-<PORT>/` and the poller its checkpoints in
`.local/checkpoints-<PORT>.json`, so a restart continues where the last run stopped (`reset` starts clean).
The stack's record, `.local/stack-<PORT>.json` (local/stack/record.py), names every process it started, so
the next start can end what a killed stack left (local/stack/recovery.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from devkit.local_aws import REGION, client
from devkit.stack_info import state_dir
from local.api_server import HttpApiServer
from local.poller import StreamPoller
from local.sandbox import Sandbox, SandboxServer
from local.services import Service, ensure_events_table, seed_secrets, start_dynamodb_local, start_moto
from local.stack import recovery
from local.stack.control_routes import control
from local.stack.environment import stack_environment, worker_environment
from local.stack.record import StackRecord
from local.stack.reply_side import ReplySide
from local.stack.settings import SECRET_NAMES, TABLE_NAME, Log, Options, Ports, bind_host
from local.template import function_spec, http_routes, stream_function_id, stream_settings
from local.workers import Function, FunctionPool, InProcessFunction, Worker


class LocalStack:
    def __init__(self, ports: Ports, *, log: Log = print, options: Options | None = None) -> None:
        self.ports = ports
        self.log = log
        self.options = options or Options()
        self.state = state_dir()
        self.bind_host = bind_host()
        self.record = StackRecord(ports.api, self._describe)
        self.data_dir = self.state / f"dynamodb-{ports.api}"
        self.services: list[Service] = []
        self.functions: dict[str, Function] = {}
        self.http: HttpApiServer | None = None
        self.sandbox_server: SandboxServer | None = None
        self.stream_arn = ""
        self.queue_url = ""
        self.reply_id = stream_function_id()
        self.reply = ReplySide(
            self.functions,
            self.reply_id,
            self._pool,
            checkpoint_file=self.state / f"checkpoints-{ports.api}.json",
            options=self.options,
            log=log,
        )
        self.ready = threading.Event()
        self.parts: dict[str, str] = {"dynamodb": "stopped", "moto": "stopped", "sandbox": "stopped"}
        self._stopped = False

    # -- URLs and record ---------------------------------------------------------------------------

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

    @property
    def state_file(self) -> Path:
        return self.record.path

    @property
    def poller(self) -> StreamPoller | None:
        return self.reply.poller

    def recover(self) -> None:
        """End what a killed stack on these ports left running (only processes it recorded), then check ports."""
        recovery.recover(self.record, self._own_ports(), self.log)

    def _own_ports(self) -> dict[str, int]:
        ports = self.ports.named()
        if self.options.dynamodb_url:
            ports.pop("DYNAMODB_PORT")
        if self.options.sandbox_url:
            ports.pop("SANDBOX_PORT")
        return ports

    def _describe(self) -> dict[str, Any]:
        return {**self.info(), "ready": self.ready.is_set()}

    # -- start / stop -----------------------------------------------------------------------------

    def start(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.recover()
        self.record.write()
        try:
            if self.options.reset:
                self.reset_data()
            self._start_servers()
            pools = self._begin_functions()  # the imports overlap the services' start-up
            self._start_services()
            for pool in pools:
                pool.wait_ready()
            self.reply.start(reload=False)
            self.ready.set()
            self.record.write()
        except BaseException:
            self.stop()
            raise

    def reset_data(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.reply.checkpoint_file.unlink()
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
        self.reply.attach(
            stream_arn=self.stream_arn, dynamodb_url=self.dynamodb_url, moto_url=self.moto_url, queue_url=self.queue_url
        )
        self.record.write()

    def _add_service(self, service: Service) -> None:
        self.services.append(service)
        self.record.track(service.name, service.process.pid, service.process.args, group=True)

    def _track_worker(self, worker: Worker) -> None:
        name = f"{worker.spec.function_id} worker"
        self.record.track(name, worker.pid, worker.process.args, group=False, worker=True)

    def environment(self) -> dict[str, str]:
        """Both functions' template environment, resolved to the local stack, plus AWS endpoints."""
        return stack_environment(
            dynamodb_url=self.dynamodb_url,
            moto_url=self.moto_url,
            sandbox_url=self.sandbox_url,
            queue_url=self.queue_url,
            log=self.log,
        )

    def _pool(self, function_id: str) -> Function:
        spec = function_spec(function_id)
        if self.options.in_process:
            os.environ.update(worker_environment(self.environment()))
            return InProcessFunction(spec, log=self.log)
        if function_id == self.reply_id:
            lanes = stream_settings(function_id).parallelization_factor * self.options.stream_split
            size = self.options.reply_concurrency or lanes
        else:
            size = self.options.concurrency
        env = worker_environment(self.environment())
        return FunctionPool(spec, env, size=size, log=self.log, on_spawn=self._track_worker)

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
            control=functools.partial(control, self),
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

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.ready.clear()
        with contextlib.suppress(Exception):
            self.reply.stop()
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
        self.record.remove()

    # -- information ------------------------------------------------------------------------------

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
        poller = self.reply.poller
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

    def banner(self) -> str:
        routes = "\n".join(f"    {r.method:<5} {self.api_url}{r.path}  ({r.function_id})" for r in http_routes())
        poller = "polling" if self.reply.poller is not None else "NOT polling (functions/reply/app.py missing)"
        return (
            "\n"
            "Local stack ready. Ctrl-C (or `make stop` from another terminal) stops everything.\n"
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
