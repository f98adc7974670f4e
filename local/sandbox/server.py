"""The sandbox's HTTP server: the providers' send endpoints and the `/_sandbox/...` control API (a route table)."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from local.api_server import BackgroundHTTPServer
from local.control import ANY, Answer, Request, Routes
from local.sandbox import meta, meta_setup, vonage, vonage_apps
from local.sandbox.common import SandboxReject
from local.sandbox.meta import GRAPH_PATH, graph_error
from local.sandbox.state import Sandbox
from local.sandbox.vonage import vonage_error

GRAPH_SETUP_PATH = re.compile(
    r"^/(?P<version>v\d+\.\d+)/(?P<node>[^/]+)/(?P<edge>subscriptions|subscribed_apps|messenger_profile)$"
)
VONAGE_APPLICATION_PATH = re.compile(r"^/v2/applications/(?P<id>[^/]+)$")
SECRET_FIELDS = frozenset({"access_token", "appsecret_proof", "verify_token"})


def _add_fault(sandbox: Sandbox, request: Request) -> Answer:
    try:
        fault = sandbox.faults.add(request.json())
    except (ValueError, TypeError) as exc:
        return 400, {"error": str(exc)}
    return 201, asdict(fault)


def _clear_faults(sandbox: Sandbox, _request: Request) -> Answer:
    sandbox.faults.clear()
    return 200, {"cleared": True}


def _clear_requests(sandbox: Sandbox, _request: Request) -> Answer:
    sandbox.clear()
    return 200, {"cleared": True}


def _reset_rate_limits(sandbox: Sandbox, _request: Request) -> Answer:
    sandbox.meta_setup.reset_rate_limits()
    return 200, {"reset": True}


def _list_requests(sandbox: Sandbox, request: Request) -> Answer:
    query = request.query
    return 200, sandbox.list_requests(query.get("provider"), query.get("recipient"), int(query.get("since", 0)))


CONTROL = Routes[Sandbox](
    {
        (ANY, "/_sandbox/health"): lambda _sandbox, _request: (200, {"ok": True}),
        ("GET", "/_sandbox/requests"): _list_requests,
        ("DELETE", "/_sandbox/requests"): _clear_requests,
        (ANY, "/_sandbox/callbacks"): lambda sandbox, _request: (200, sandbox.list_callbacks()),
        ("POST", "/_sandbox/faults"): _add_fault,
        ("GET", "/_sandbox/faults"): lambda sandbox, _request: (200, [asdict(f) for f in sandbox.faults.list()]),
        ("DELETE", "/_sandbox/faults"): _clear_faults,
        ("POST", "/_sandbox/config"): lambda sandbox, request: (200, sandbox.configure(request.json())),
        ("GET", "/_sandbox/setup"): lambda sandbox, _request: (200, sandbox.setup()),
        ("DELETE", "/_sandbox/rate-limits"): _reset_rate_limits,
    },
    not_found={"error": "unknown sandbox control path"},
)


class _Handler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815

    def _handle(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        extra: dict[str, str] = {}
        try:
            if split.path.startswith("/_sandbox/"):
                request = Request(self.command, split.path, raw, dict(parse_qsl(split.query)))
                status, payload = CONTROL.dispatch(self.server.sandbox, request)
            elif GRAPH_SETUP_PATH.match(split.path) or VONAGE_APPLICATION_PATH.match(split.path):
                status, payload, extra = self._setup(split.path, split.query, raw)
            else:
                status, payload = self._provider(split.path, split.query, raw)
        except SandboxReject as reject:
            status, payload = reject.status, reject.body
        self._send(status, payload, extra)

    def _setup(self, path: str, raw_query: str, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        """A call to a setup edge (`make connect`): answered by meta_setup or vonage_apps, and recorded with
        every token, proof and verify token masked."""
        sandbox = self.server.sandbox
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = {k: v[-1] for k, v in parse_qs(raw_query).items()}
        body = _parse_body(raw, headers.get("content-type", ""))
        graph = GRAPH_SETUP_PATH.match(path)
        extra: dict[str, str] = {}
        try:
            if graph:
                status, payload = meta_setup.handle(
                    sandbox, self.command, graph["node"], graph["edge"], query, headers, body
                )
            else:
                application = VONAGE_APPLICATION_PATH.match(path)
                assert application is not None
                status, payload = vonage_apps.handle(sandbox, self.command, application["id"], headers, body)
        except SandboxReject as reject:
            status, payload, extra = reject.status, reject.body, reject.headers
        entry = {
            "provider": "meta" if graph else "vonage",
            "at": time.time(),
            "method": self.command,
            "path": path,
            "query": _masked(query),
            "headers": {k: ("***" if k == "authorization" else v) for k, v in headers.items()},
            "body": _masked(body) if isinstance(body, dict) else body,
            "status": status,
            "response": payload,
        }
        sandbox.record(entry)
        sandbox.log(f"[sandbox] {entry['provider']} {self.command} {path} -> {status}")
        return status, payload, extra

    def _provider(self, path: str, raw_query: str, raw: bytes) -> tuple[int, Any]:
        sandbox = self.server.sandbox
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = {k: v[-1] for k, v in parse_qs(raw_query).items()}
        graph = GRAPH_PATH.match(path)
        provider = "meta" if graph else "vonage" if path == "/v1/messages" else None
        if provider is None or self.command != "POST":
            return 404, {"error": "no such sandbox endpoint"}
        body = _parse_body(raw, headers.get("content-type", ""))
        masked = {k: ("***" if k == "authorization" else v) for k, v in headers.items()}
        entry = {
            "provider": provider,
            "at": time.time(),
            "method": self.command,
            "path": path,
            "query": _masked(query),
            "headers": masked,
            "body": body,
        }
        if isinstance(body, dict):
            entry["recipient"] = (
                str((body.get("recipient") or {}).get("id")) if provider == "meta" else str(body.get("to"))
            )
        callback = None
        try:
            if not isinstance(body, dict):
                raise (
                    graph_error(400, 100, "(#100) The request body is not valid JSON or form data")
                    if provider == "meta"
                    else vonage_error(400, "Bad Request", "Body is not JSON.", "#bad-request")
                )
            if graph:
                status, payload, callback = meta.send(sandbox, graph["page_id"], query, headers, dict(body))
            else:
                status, payload, callback = vonage.send(sandbox, headers, body)
        except SandboxReject as reject:
            status, payload = reject.status, reject.body
        entry.update(status=status, response=payload)
        sandbox.record(entry)
        sandbox.log(f"[sandbox] {provider} {path} to {entry.get('recipient')} -> {status}")
        if callback is not None:
            threading.Thread(target=callback, name="sandbox-callback", daemon=True).start()
        return status, payload

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        kind = "application/problem+json" if status >= 400 and "title" in (payload or {}) else "application/json"
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _masked(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("***" if k in SECRET_FIELDS else v) for k, v in values.items()}


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return {}
    if content_type.startswith("application/x-www-form-urlencoded"):
        form: dict[str, Any] = {}
        for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
            try:
                form[key] = json.loads(value) if value[:1] in "{[" else value
            except ValueError:
                form[key] = value
        return form
    try:
        return json.loads(raw)
    except ValueError:
        return None


class SandboxServer(BackgroundHTTPServer):
    thread_name = "sandbox"

    def __init__(self, port: int, sandbox: Sandbox, host: str = "127.0.0.1") -> None:
        super().__init__((host, port), _Handler)
        self.sandbox = sandbox
