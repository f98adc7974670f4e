"""Serve template.yaml's HttpApi routes on localhost, like `sam local start-api`, without Docker.

Each request becomes an API Gateway payload-2.0 event (devkit.apigw_events.http_event) and is passed to the real
`lambda_handler` of the route's function, run in a pool of worker processes (local.workers): requests run
concurrently up to the pool's size, each in its own warm "container". The Lambda result is turned back into
HTTP the way API Gateway does it. Until the stack is ready (functions imported, poller running) requests wait.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devkit.apigw_events import http_event
from local.template import Route
from local.workers import Function, FunctionError, WorkerError

Log = Callable[[str], None]
# (method, path, body) -> (status, JSON-able body), or None when the path is not a control path.
Control = Callable[[str, str, bytes], tuple[int, Any] | None]
# How long a request that arrives while the stack starts waits for it before it gets a 503.
READY_WAIT_S = 60.0
INTERNAL_ERROR = b'{"message":"Internal Server Error"}'


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = [(route, _path_regex(route.path)) for route in routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, regex in self.routes:
            found = regex.fullmatch(path)
            if found and route.method in (method, "ANY"):
                return route, dict(found.groupdict())
        return None


def _path_regex(path: str) -> re.Pattern[str]:
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                pattern += f"(?P<{name[:-1]}>.+)"
            else:
                pattern += f"(?P<{name}>[^/]+)"
        else:
            pattern += re.escape(part)
    return re.compile(pattern)


def to_http(result: Any) -> tuple[int, dict[str, str], list[str], bytes]:
    """A payload-2.0 Lambda result -> (status, headers, cookies, body), as API Gateway interprets it."""
    if isinstance(result, dict) and "statusCode" in result:
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        raw = result.get("body")
        body = b"" if raw is None else str(raw).encode()
        if result.get("isBase64Encoded") and raw:
            body = base64.b64decode(str(raw))
        cookies = [str(c) for c in result.get("cookies") or []]
        return int(result["statusCode"]), headers, cookies, body
    # No statusCode: API Gateway assumes 200 and JSON, and the whole result is the body.
    body = result.encode() if isinstance(result, str) else json.dumps(result).encode()
    return 200, {"content-type": "application/json"}, [], body


class _Handler(BaseHTTPRequestHandler):
    server: HttpApiServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def _handle(self) -> None:
        started = time.monotonic()
        split = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        control = self.server.control(self.command, split.path, body) if self.server.control else None
        if control is not None:
            status, payload = control
            self._send(status, {"content-type": "application/json"}, [], json.dumps(payload).encode())
            return
        found = self.server.router.match(self.command, split.path)
        if found is None:
            self._send(404, {"content-type": "application/json"}, [], b'{"message":"Not Found"}')
            self.server.log(f"[api] {self.command} {split.path} -> 404 (no route)")
            return
        route, params = found
        if not self.server.ready.wait(READY_WAIT_S):
            self._send(
                503,
                {"content-type": "application/json", "retry-after": "1"},
                [],
                b'{"message":"Service Unavailable: the local stack is starting"}',
            )
            self.server.log(f"[api] {self.command} {split.path} -> 503 (stack not ready)")
            return
        function = self.server.functions[route.function_id]
        event = self._event(route, params, split.query, body)
        waited = handler_ms = 0.0
        try:
            result, waited, handler_ms = function.invoke_timed(event)
            status, headers, cookies, out = to_http(result)
        except (FunctionError, WorkerError) as exc:  # a crashed handler is API Gateway's 500
            self.server.log(f"[api] {route.function_id} failed: {exc}")
            status, headers, cookies, out = 500, {"content-type": "application/json"}, [], INTERNAL_ERROR
        self._send(status, headers, cookies, out)
        elapsed = (time.monotonic() - started) * 1000
        queued = f", {waited:.0f} ms waiting for a worker" if waited >= 1 else ""
        self.server.log(
            f"[api] {self.command} {split.path} -> {status} ({elapsed:.0f} ms: {handler_ms:.0f} ms in "
            f"{route.function_id}{queued})"
        )

    def _event(self, route: Route, params: dict[str, str], raw_query: str, body: bytes) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
        query: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        event = http_event(
            self.command,
            urlsplit(self.path).path,
            body if body else None,
            headers,
            query,
            route_key=f"{route.method} {route.path}",
            path_parameters=params or None,
            source_ip=self.client_address[0],
        )
        event["rawQueryString"] = raw_query
        if cookies:
            event["cookies"] = cookies
        return event

    def _send(self, status: int, headers: dict[str, str], cookies: list[str], body: bytes) -> None:
        self.send_response(status)
        lowered = {k.lower() for k in headers}
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        if "content-type" not in lowered and body:
            self.send_header("content-type", "application/json")
        for cookie in cookies:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(body)))
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class BackgroundHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that serves from a daemon thread until `stop()`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the listen backlog: a burst of connections waits instead of being reset
    thread_name = "http"

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name=self.thread_name, daemon=True).start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return  # the client gave up waiting (its timeout) and closed the connection: nothing to answer
        super().handle_error(request, client_address)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class HttpApiServer(BackgroundHTTPServer):
    thread_name = "http-api"

    def __init__(
        self,
        port: int,
        routes: list[Route],
        functions: dict[str, Function],
        *,
        control: Control | None = None,
        log: Log = print,
        host: str = "127.0.0.1",
        ready: threading.Event | None = None,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.router = Router(routes)
        self.functions = functions
        self.ready = ready or threading.Event()
        self.control = control
        self.log = log
