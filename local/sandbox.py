"""Sandbox providers: a local Graph Send API and Vonage Messages API that validate, record and call back.

- `POST /{version}/{page_id}/messages` (Graph): checks the Page token (and `appsecret_proof` if sent)
  against events/sandbox-secrets.json and the body schema; answers `{"recipient_id", "message_id"}` or a
  Graph error `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`. Then posts a signed
  echo, a delivery and a read event to the webhook's `/meta/webhook`.
- `POST /v1/messages` (Vonage): checks the RS256 application JWT with the public half of the sandbox
  private key and the body schema; answers 202 `{"message_uuid"}` or an RFC 7807 error. Then posts signed
  `submitted`, `delivered` and `read` statuses to `/vonage/status`.
- `GET /_sandbox/requests` (filters: provider, recipient, since) lists every request, `DELETE` clears;
  `GET /_sandbox/callbacks` lists the callbacks sent and the webhook's answers.
- A callback the webhook does not accept is retried as the provider would (META_CALLBACK_RETRY,
  VONAGE_CALLBACK_RETRY), on a schedule compressed `retry_time_scale` times for local use.
- `POST /_sandbox/faults` `{"provider", "fault": "5xx|429|613|timeout|permanent", "code", "count",
  "recipient", "seconds"}` makes the next matching sends fail; `GET` lists, `DELETE` clears.

Command line: `python -m local.sandbox fault meta 5xx --count 2`, `... requests`, `... clear`, `... serve`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets as pysecrets
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization

from local.http_api import BackgroundHTTPServer, add_layers_to_path
from local.services import sandbox_secrets

add_layers_to_path()
from messenger.providers.meta.limits import message_problems  # noqa: E402 - needs the layer on sys.path
from tools import payloads  # noqa: E402

SANDBOX_APP_ID = 1517776481860111
GRAPH_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<page_id>[^/]+)/messages$")
MESSAGING_TYPES = {"RESPONSE", "UPDATE", "MESSAGE_TAG"}
LIVE_TAGS = {"HUMAN_AGENT", "CUSTOMER_FEEDBACK"}
RETIRED_TAGS = {"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"}
SENDER_ACTIONS = {"typing_on", "typing_off", "mark_seen"}
VONAGE_TYPES = {"text", "image", "audio", "video", "file"}
VONAGE_CATEGORIES = {"response", "update", "message_tag"}
VONAGE_WEBHOOK_VERSIONS = {"v0.1", "v1"}
FAULTS = {"5xx", "429", "613", "timeout", "permanent"}
PERMANENT_META = {
    10: (2018278, "(#10) This message is sent outside of allowed window."),
    100: (2018001, "(#100) No matching user found"),
    190: (463, "Error validating access token: Session has expired."),
    200: (None, "(#200) Permissions error"),
    551: (1545041, "(#551) This person isn't available right now."),
}
Log = Callable[[str], None]


@dataclass(frozen=True)
class RetrySchedule:
    """How a provider re-sends a callback the webhook did not accept, in the provider's real seconds."""

    immediate: int  # retries sent at once, before the backoff starts
    first_s: float  # the first backoff delay; it doubles up to max_delay_s
    max_delay_s: float
    window_s: float  # no retry starts later than this after the first attempt
    only_429_5xx: bool  # False: any answer but 2xx (and no answer) is retried

    def retryable(self, status: int) -> bool:
        """`status` 0 = no answer (connection refused, reset or timed out): both providers retry it."""
        if self.only_429_5xx:
            return status == 0 or status == 429 or status >= 500
        return not 200 <= status < 300

    def delays(self, time_scale: float = 1.0) -> list[float]:
        """The waits before each retry, compressed `time_scale` times."""
        delays = [0.0] * self.immediate
        elapsed, delay = 0.0, self.first_s
        while elapsed + delay <= self.window_s:
            delays.append(delay / time_scale)
            elapsed += delay
            delay = min(delay * 2, self.max_delay_s)
        return delays


# Meta: "retries a few times at once", then with decreasing frequency; after 1 h of failures Messenger
# unsubscribes the app (docs/meta-messenger spec: Delivery semantics). The backoff steps are not published.
META_CALLBACK_RETRY = RetrySchedule(immediate=2, first_s=30, max_delay_s=900, window_s=3600, only_429_5xx=False)
# Vonage: only 429 and 5xx are retried, first after ~5 s, doubling up to every 15 min, discarded after 24 h.
VONAGE_CALLBACK_RETRY = RetrySchedule(immediate=0, first_s=5, max_delay_s=900, window_s=86400, only_429_5xx=True)
CALLBACK_RETRY = {"meta": META_CALLBACK_RETRY, "vonage": VONAGE_CALLBACK_RETRY}
CALLBACK_TIMEOUT_S = {"meta": 20.0, "vonage": 15.0}  # how long each provider waits for the webhook's answer


class SandboxReject(Exception):  # noqa: N818 - a response, not an error of ours
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass
class Fault:
    provider: str
    fault: str
    code: int | None = None
    count: int = 1
    recipient: str | None = None
    seconds: float = 20.0


def graph_error(status: int, code: int, message: str, subcode: int | None = None,
                transient: bool = False) -> SandboxReject:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                             "fbtrace_id": "A" + pysecrets.token_urlsafe(12)}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return SandboxReject(status, {"error": error})


def vonage_error(status: int, title: str, detail: str, kind: str,
                 invalid: list[dict[str, str]] | None = None) -> SandboxReject:
    body: dict[str, Any] = {"type": f"https://developer.vonage.com/api-errors{kind}", "title": title,
                            "detail": detail, "instance": str(uuid.uuid4())}
    if invalid:
        body["invalid_parameters"] = invalid
    return SandboxReject(status, body)


class Sandbox:
    """The providers' state: secrets, recorded requests, pending faults and callbacks sent."""

    def __init__(self, webhook_base: str | None = None, *, callback_delay_s: float = 0.2, log: Log = print,
                 retry_time_scale: float = 60.0) -> None:
        secrets = sandbox_secrets()
        self.meta = secrets["meta"]
        self.vonage = secrets["vonage"]
        private_key = serialization.load_pem_private_key(self.vonage["private_key"].encode(), password=None)
        self.vonage_public_key = private_key.public_key()
        self.pages = set(self.meta["page_tokens"])
        self.webhook_base = webhook_base.rstrip("/") if webhook_base else None
        self.callback_delay_s = callback_delay_s
        self.callbacks_enabled = True
        self.retry_time_scale = retry_time_scale
        self.read_delay_s = 1.0
        self.log = log
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._next_id = 1

    # -- bookkeeping ------------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry["id"] = self._next_id
            self._next_id += 1
            self.requests.append(entry)
        return entry

    def list_requests(self, provider: str | None = None, recipient: str | None = None,
                      since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["id"] > since
                    and (provider is None or r["provider"] == provider)
                    and (recipient is None or r.get("recipient") == recipient)]

    def add_fault(self, spec: dict[str, Any]) -> Fault:
        provider, kind = spec.get("provider"), str(spec.get("fault", ""))
        if provider not in ("meta", "vonage") or kind not in FAULTS:
            raise ValueError(f"provider must be meta|vonage and fault one of {sorted(FAULTS)}")
        fault = Fault(provider, kind, int(spec["code"]) if spec.get("code") is not None else None,
                      max(1, int(spec.get("count", 1))), spec.get("recipient"), float(spec.get("seconds", 20)))
        with self._lock:
            self.faults.append(fault)
        detail = (f" code {fault.code}" if fault.code else "") + (f" for {fault.recipient}" if fault.recipient else "")
        self.log(f"[sandbox] fault armed: {provider} {kind} x{fault.count}{detail}")
        return fault

    def take_fault(self, provider: str, recipient: str | None) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.provider == provider and fault.recipient in (None, recipient):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.callbacks.clear()

    # -- Graph Send API ---------------------------------------------------------------------------

    def graph_send(self, page_id: str, query: dict[str, str], headers: dict[str, str],
                   body: dict[str, Any]) -> tuple[int, dict[str, Any], Callable[[], None] | None]:
        token = query.get("access_token") or body.pop("access_token", None) or _bearer(headers, "oauth", "bearer")
        proof = query.get("appsecret_proof") or body.pop("appsecret_proof", None)
        expected = self.meta["page_tokens"].get(page_id)
        if not token:
            raise graph_error(400, 2500, "An active access token must be used to query information about the "
                              "current user.")
        if expected is None:
            raise graph_error(400, 100, f"Unsupported post request. Object with ID '{page_id}' does not exist, cannot "
                              "be loaded due to missing permissions, or does not support this operation.", 33)
        if not hmac.compare_digest(str(token).encode(), expected.encode()):
            raise graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if proof is not None:
            wanted = hmac.new(self.meta["app_secret"].encode(), expected.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(str(proof).encode(), wanted.encode()):
                raise graph_error(400, 100, "Invalid appsecret_proof provided in the API argument")
        _validate_graph_body(body)
        recipient = str(body["recipient"]["id"])
        fault = self.take_fault("meta", recipient)
        if fault is not None:
            self._apply_fault_meta(fault)
        if "sender_action" in body:
            return 200, {"recipient_id": recipient}, None
        mid = "m_" + pysecrets.token_urlsafe(24)
        return 200, {"recipient_id": recipient, "message_id": mid}, \
            lambda: self._meta_callbacks(page_id, recipient, mid, body["message"])

    def _apply_fault_meta(self, fault: Fault) -> None:
        self.log(f"[sandbox] injecting meta {fault.fault}" + (f" ({fault.code})" if fault.code else ""))
        if fault.fault == "timeout":
            time.sleep(fault.seconds)
            return
        if fault.fault == "5xx":
            raise graph_error(500, fault.code or 2, "An unexpected error has occurred. Please retry your request "
                              "later.", transient=True)
        if fault.fault == "429":
            raise graph_error(429, fault.code or 4, "(#4) Application request limit reached", transient=True)
        if fault.fault == "613":
            raise graph_error(400, 613, "(#613) Calls to this API have exceeded the rate limit.", transient=True)
        code = fault.code or 100
        subcode, message = PERMANENT_META.get(code, (None, f"(#{code}) Permanent error injected by the sandbox"))
        raise graph_error(403 if code in (10, 200) else 400, code, message, subcode)

    def _meta_callbacks(self, page_id: str, psid: str, mid: str, message: dict[str, Any]) -> None:
        now = payloads.now_ms()
        echo: dict[str, Any] = {"is_echo": True, "app_id": SANDBOX_APP_ID, "mid": mid}
        for key in ("text", "attachment", "quick_replies", "metadata"):
            if key in message:
                echo[key] = message[key]
        events = [
            ("echo", payloads.meta_message(page_id, psid, now, message=echo)),
            ("delivered", payloads.meta_message(psid, page_id, now + 1, delivery={"mids": [mid], "watermark": now})),
            ("read", payloads.meta_message(psid, page_id, now + 2, read={"watermark": now + 1})),
        ]
        for kind, event in events:
            # A person reads a while after delivery; Meta's read event carries only a watermark, which the
            # webhook resolves against the stored outbound messages, so it must not overtake their write.
            time.sleep(self.callback_delay_s + (self.read_delay_s if kind == "read" else 0))
            if kind == "read":
                now = payloads.now_ms()
                event.update(timestamp=now, read={"watermark": now})
            body, headers = payloads.signed_meta(payloads.meta_page(event, page_id=page_id), self.meta)
            self._post_callback("meta", kind, mid, "/meta/webhook", body, headers)

    # -- Vonage Messages API ----------------------------------------------------------------------

    def vonage_send(self, headers: dict[str, str],
                    body: dict[str, Any]) -> tuple[int, dict[str, Any], Callable[[], None] | None]:
        token = _bearer(headers, "bearer")
        if not token:
            raise vonage_error(401, "Unauthorized", "You did not provide correct credentials.", "#unauthorized")
        try:
            claims = jwt.decode(token, self.vonage_public_key, algorithms=["RS256"],
                                options={"require": ["iat", "jti", "application_id"], "verify_aud": False})
        except jwt.PyJWTError as exc:
            raise vonage_error(401, "Unauthorized", f"Invalid token ({type(exc).__name__}).", "#unauthorized") from None
        if claims.get("application_id") != self.vonage["application_id"]:
            raise vonage_error(401, "Unauthorized", "The application_id does not match.", "#unauthorized")
        if float(claims["iat"]) > time.time() + 60:
            raise vonage_error(401, "Unauthorized", "iat is in the future.", "#unauthorized")
        invalid = _validate_vonage_body(body, self.pages)
        if invalid:
            raise vonage_error(422, "Invalid params", "Your request parameters did not validate.",
                               "/messages#1150", invalid)
        fault = self.take_fault("vonage", str(body["to"]))
        if fault is not None:
            self._apply_fault_vonage(fault)
        message_uuid = str(uuid.uuid4())
        return 202, {"message_uuid": message_uuid}, lambda: self._vonage_callbacks(body, message_uuid)

    def _apply_fault_vonage(self, fault: Fault) -> None:
        self.log(f"[sandbox] injecting vonage {fault.fault}" + (f" ({fault.code})" if fault.code else ""))
        if fault.fault == "timeout":
            time.sleep(fault.seconds)
            return
        if fault.fault == "5xx":
            raise vonage_error(fault.code or 500, "Internal Error", "The server encountered an error.",
                               "#internal-error")
        if fault.fault in ("429", "613"):
            raise vonage_error(429, "Rate Limit Hit", "Please wait, then retry your request", "#throttled")
        status = fault.code or 422
        titles = {401: "Unauthorized", 402: "Low balance", 403: "Forbidden", 404: "Not Found"}
        raise vonage_error(status, titles.get(status, "Invalid params"), "Permanent error injected by the sandbox.",
                           "/messages#1150" if status == 422 else f"#{status}")

    def _vonage_callbacks(self, request: dict[str, Any], message_uuid: str) -> None:
        path = "/vonage/status"
        url = request.get("webhook_url")
        for status in ("submitted", "delivered", "read"):
            time.sleep(self.callback_delay_s)
            payload: dict[str, Any] = {
                "message_uuid": message_uuid, "to": request["to"], "from": request["from"],
                "timestamp": payloads.vonage_time(), "status": status,
                "channel": "messenger",
            }
            if request.get("client_ref"):
                payload["client_ref"] = request["client_ref"]
            if status == "submitted":
                payload["usage"] = {"currency": "EUR", "price": "0.0000"}
            body, headers = payloads.signed_vonage(payload, self.vonage, application_id=self.vonage["application_id"])
            self._post_callback("vonage", status, message_uuid, url or path, body, headers)

    # -- callbacks --------------------------------------------------------------------------------

    def _post_callback(self, provider: str, kind: str, message_id: str, target: str, body: bytes,
                       headers: dict[str, str]) -> None:
        """POST one callback; re-send it on the provider's retry schedule until accepted or given up."""
        if not self.callbacks_enabled or (self.webhook_base is None and not target.startswith("http")):
            return
        url = target if target.startswith("http") else f"{self.webhook_base}{target}"
        schedule = CALLBACK_RETRY[provider]
        delays = schedule.delays(self.retry_time_scale)
        attempts, status = 0, 0
        while True:
            attempts += 1
            status = self._deliver(url, body, headers, CALLBACK_TIMEOUT_S[provider])
            if 200 <= status < 300 or not schedule.retryable(status) or attempts > len(delays):
                break
            wait = delays[attempts - 1]
            self.log(f"[sandbox] {provider} callback {kind} for {message_id[:14]}… -> {status or 'no answer'}; "
                     f"retry {attempts} in {wait:.2f}s")
            time.sleep(wait)
        with self._lock:
            self.callbacks.append({"provider": provider, "kind": kind, "message_id": message_id, "url": url,
                                   "status": status, "attempts": attempts, "at": time.time()})
        outcome = "" if 200 <= status < 300 else (
            " (not retried: the provider retries only 429 and 5xx)" if not schedule.retryable(status)
            else f" (given up after {attempts} attempts: the retry window is over)")
        self.log(f"[sandbox] {provider} callback {kind} for {message_id[:14]}… -> {status}{outcome}")

    def _deliver(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """One POST; the HTTP status, or 0 when there was no answer."""
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"content-type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError as exc:
            self.log(f"[sandbox] callback to {url} got no answer: {exc}")
            return 0


def _bearer(headers: dict[str, str], *schemes: str) -> str | None:
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    return token.strip() or None if scheme.lower() in schemes else None


def _validate_graph_body(body: dict[str, Any]) -> None:
    def bad(message: str, subcode: int | None = None) -> SandboxReject:
        return graph_error(400, 100, f"(#100) {message}", subcode)

    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not isinstance(recipient.get("id"), str | int) or not recipient.get("id"):
        raise bad("The parameter recipient is required")
    if ("message" in body) == ("sender_action" in body):
        raise bad("Exactly one of message and sender_action must be set")
    if "sender_action" in body:
        if body["sender_action"] not in SENDER_ACTIONS:
            raise bad("param sender_action must be one of {typing_on, typing_off, mark_seen}")
        return
    _validate_messaging_type(body, bad)
    _validate_message(body["message"], bad)


def _validate_messaging_type(body: dict[str, Any], bad: Callable[..., SandboxReject]) -> None:
    kind = body.get("messaging_type")
    if kind not in MESSAGING_TYPES:
        raise bad("param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}")
    if kind == "MESSAGE_TAG":
        tag = body.get("tag")
        if tag in RETIRED_TAGS:
            raise bad(f"Tag {tag} is no longer supported", 2018344)
        if tag not in LIVE_TAGS:
            raise bad("param tag must be a supported message tag when messaging_type is MESSAGE_TAG")


def _validate_message(message: Any, bad: Callable[..., SandboxReject]) -> None:
    """The layer's own Send API limits (messenger/providers/meta/limits.py): one definition for both sides."""
    problems = message_problems(message)
    if problems:
        raise bad("param " + problems[0])


def _validate_vonage_body(body: dict[str, Any], pages: set[str]) -> list[dict[str, str]]:
    invalid: list[dict[str, str]] = []
    if body.get("channel") != "messenger":
        invalid.append({"name": "channel", "reason": "must be messenger"})
    kind = body.get("message_type")
    if kind not in VONAGE_TYPES:
        invalid.append({"name": "message_type", "reason": f"must be one of {sorted(VONAGE_TYPES)}"})
    for name in ("to", "from"):
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= 50:
            invalid.append({"name": name, "reason": "must be a string of 1-50 characters"})
    if isinstance(body.get("from"), str) and body["from"] not in pages:
        invalid.append({"name": "from", "reason": "is not a Page linked to this application (swapped to/from?)"})
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 640:
            invalid.append({"name": "text", "reason": "must be 1-640 characters"})
    elif kind in VONAGE_TYPES:
        media = body.get(kind)
        if not isinstance(media, dict) or not isinstance(media.get("url"), str):
            invalid.append({"name": f"{kind}.url", "reason": "is required"})
    messenger = body.get("messenger") or {}
    if not isinstance(messenger, dict):
        invalid.append({"name": "messenger", "reason": "must be an object"})
    else:
        category = messenger.get("category", "response")
        if category not in VONAGE_CATEGORIES:
            invalid.append({"name": "messenger.category", "reason": "invalid value"})
        if category == "message_tag" and not messenger.get("tag"):
            invalid.append({"name": "messenger.tag", "reason": "is required for message_tag"})
    client_ref = body.get("client_ref")
    if client_ref is not None and (not isinstance(client_ref, str) or len(client_ref) > 100):
        invalid.append({"name": "client_ref", "reason": "must be at most 100 characters"})
    invalid += _validate_vonage_webhook(body)
    return invalid


def _validate_vonage_webhook(body: dict[str, Any]) -> list[dict[str, str]]:
    """`webhook_version` is `v0.1` or `v1`; `webhook_url` an http(s) URL (per-message status overrides)."""
    invalid: list[dict[str, str]] = []
    version = body.get("webhook_version")
    if version is not None and version not in VONAGE_WEBHOOK_VERSIONS:
        invalid.append({"name": "webhook_version", "reason": f"must be one of {sorted(VONAGE_WEBHOOK_VERSIONS)}"})
    url = body.get("webhook_url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
        invalid.append({"name": "webhook_url", "reason": "must be an http(s) URL"})
    return invalid


class _Handler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    do_POST = do_DELETE = do_GET  # noqa: N815

    def _handle(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if split.path.startswith("/_sandbox/"):
                status, payload = self._control(split.path, dict(parse_qsl(split.query)), raw)
            else:
                status, payload = self._provider(split.path, split.query, raw)
        except SandboxReject as reject:
            status, payload = reject.status, reject.body
        self._send(status, payload)

    def _control(self, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        sandbox = self.server.sandbox
        method = self.command
        if path == "/_sandbox/health":
            return 200, {"ok": True}
        if path == "/_sandbox/requests" and method == "GET":
            return 200, sandbox.list_requests(query.get("provider"), query.get("recipient"),
                                              int(query.get("since", 0)))
        if path == "/_sandbox/requests" and method == "DELETE":
            sandbox.clear()
            return 200, {"cleared": True}
        if path == "/_sandbox/callbacks":
            with sandbox._lock:
                return 200, list(sandbox.callbacks)
        if path == "/_sandbox/faults" and method == "POST":
            try:
                fault = sandbox.add_fault(json.loads(raw or b"{}"))
            except (ValueError, TypeError) as exc:
                return 400, {"error": str(exc)}
            return 201, asdict(fault)
        if path == "/_sandbox/faults" and method == "GET":
            with sandbox._lock:
                return 200, [asdict(f) for f in sandbox.faults]
        if path == "/_sandbox/faults" and method == "DELETE":
            with sandbox._lock:
                sandbox.faults.clear()
            return 200, {"cleared": True}
        if path == "/_sandbox/config" and method == "POST":
            config = json.loads(raw or b"{}")
            if "webhook_base" in config:
                sandbox.webhook_base = str(config["webhook_base"]).rstrip("/") or None
            if "callback_delay_s" in config:
                sandbox.callback_delay_s = float(config["callback_delay_s"])
            if "read_delay_s" in config:
                sandbox.read_delay_s = float(config["read_delay_s"])
            if "callbacks" in config:
                sandbox.callbacks_enabled = bool(config["callbacks"])
            if "retry_time_scale" in config:
                sandbox.retry_time_scale = max(1.0, float(config["retry_time_scale"]))
            return 200, {"webhook_base": sandbox.webhook_base, "callback_delay_s": sandbox.callback_delay_s,
                         "read_delay_s": sandbox.read_delay_s, "callbacks": sandbox.callbacks_enabled,
                         "retry_time_scale": sandbox.retry_time_scale}
        return 404, {"error": "unknown sandbox control path"}

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
        entry = {"provider": provider, "at": time.time(), "method": self.command, "path": path,
                 "query": {k: ("***" if k in ("access_token", "appsecret_proof") else v) for k, v in query.items()},
                 "headers": masked, "body": body}
        if isinstance(body, dict):
            entry["recipient"] = str((body.get("recipient") or {}).get("id")) if provider == "meta" \
                else str(body.get("to"))
        callback = None
        try:
            if not isinstance(body, dict):
                raise (graph_error(400, 100, "(#100) The request body is not valid JSON or form data")
                       if provider == "meta" else vonage_error(400, "Bad Request", "Body is not JSON.", "#bad-request"))
            if graph:
                status, payload, callback = sandbox.graph_send(graph["page_id"], query, headers, dict(body))
            else:
                status, payload, callback = sandbox.vonage_send(headers, body)
        except SandboxReject as reject:
            status, payload = reject.status, reject.body
        entry.update(status=status, response=payload)
        sandbox.record(entry)
        sandbox.log(f"[sandbox] {provider} {path} to {entry.get('recipient')} -> {status}")
        if callback is not None:
            threading.Thread(target=callback, name="sandbox-callback", daemon=True).start()
        return status, payload

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        kind = "application/problem+json" if status >= 400 and "title" in (payload or {}) else "application/json"
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


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


# -- command line -----------------------------------------------------------------------------------


def _default_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('SANDBOX_PORT', '3001')}"


def _call(method: str, url: str, payload: Any = None) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback URL
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"sandbox answered {exc.code}: {exc.read().decode(errors='replace')}") from None
    except OSError as exc:
        raise SystemExit(f"cannot reach the sandbox at {url} ({exc}); is `make dev` running?") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=_default_url(), help="sandbox base URL (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    fault = commands.add_parser("fault", help="make the next send(s) of a provider fail")
    fault.add_argument("provider", choices=["meta", "vonage"])
    fault.add_argument("fault", choices=sorted(FAULTS))
    fault.add_argument("--count", type=int, default=1)
    fault.add_argument("--code", type=int,
                       help="Graph error code (permanent: 10, 100, 190, 200, 551) or Vonage HTTP status")
    fault.add_argument("--recipient", help="only sends to this PSID")
    fault.add_argument("--seconds", type=float, default=20.0, help="timeout fault: how long to hold the request")
    fault.add_argument("--url", default=argparse.SUPPRESS)
    faults = commands.add_parser("faults", help="list (or --clear) pending faults")
    faults.add_argument("--clear", action="store_true")
    faults.add_argument("--url", default=argparse.SUPPRESS)
    requests = commands.add_parser("requests", help="print the recorded requests as JSON")
    requests.add_argument("--provider", choices=["meta", "vonage"])
    requests.add_argument("--url", default=argparse.SUPPRESS)
    clear = commands.add_parser("clear", help="forget the recorded requests and callbacks")
    clear.add_argument("--url", default=argparse.SUPPRESS)
    serve = commands.add_parser("serve", help="run the sandbox on its own")
    serve.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", 3001)))
    serve.add_argument("--webhook", default=f"http://127.0.0.1:{os.environ.get('PORT', '3000')}")
    serve.add_argument("--retry-time-scale", type=float, default=60.0,
                       help="run the providers' callback retry schedules this many times faster (default: 60)")
    serve.add_argument("--callback-delay", type=float, default=0.2, help="seconds between a send's callbacks")
    args = parser.parse_args(argv)
    base = args.url.rstrip("/")
    if args.command == "fault":
        spec = {"provider": args.provider, "fault": args.fault, "count": args.count, "code": args.code,
                "recipient": args.recipient, "seconds": args.seconds}
        print(json.dumps(_call("POST", f"{base}/_sandbox/faults", spec)))
    elif args.command == "faults":
        print(json.dumps(_call("DELETE" if args.clear else "GET", f"{base}/_sandbox/faults"), indent=2))
    elif args.command == "requests":
        query = f"?{urlencode({'provider': args.provider})}" if args.provider else ""
        print(json.dumps(_call("GET", f"{base}/_sandbox/requests{query}"), indent=2))
    elif args.command == "clear":
        print(json.dumps(_call("DELETE", f"{base}/_sandbox/requests")))
    else:
        sandbox = Sandbox(args.webhook, callback_delay_s=args.callback_delay, retry_time_scale=args.retry_time_scale)
        server = SandboxServer(args.port, sandbox)
        print(f"sandbox providers on http://127.0.0.1:{args.port} (callbacks to {args.webhook}); Ctrl-C stops",
              flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
