"""`make chat`: type as a Messenger user and watch the bot answer through the running local stack.

Each line travels the real path: a signed Meta (or Vonage) webhook POST -> the webhook function ->
DynamoDB Local -> the stream poller -> the reply function -> the sandbox provider -> status callbacks.
Replies are read from the sandbox's recorded sends to this user, statuses from the outbound items in
DynamoDB Local. Works from a pipe too: `echo hi | python -m local.chat` prints the reply and exits.

At the prompt: `/provider meta|vonage` switches the provider, `/user <psid>` the user, `/quit` leaves.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from devkit.http_client import http
from devkit.lambda_code import add_layers_to_path
from devkit.local_aws import client
from devkit.sandbox_secrets import sandbox_secrets

add_layers_to_path()
from devkit import payloads  # noqa: E402
from messenger.events import conversation_id  # noqa: E402 - needs the layer on sys.path
from messenger.storage import DynamoStore  # noqa: E402

STICKER_ID = 369239263222822  # Meta's "like" thumbs-up sticker
STICKER_URL = "https://cdn.example.com/sticker-like.png"
FINAL_STATUSES = {"read", "rejected", "undeliverable", "failed"}


@dataclass
class Endpoints:
    api: str
    sandbox: str
    dynamodb: str
    table: str = "messenger-events"

    @classmethod
    def discover(cls, args: argparse.Namespace) -> Endpoints:
        port = os.environ.get("PORT", "3000")
        state = Path(os.environ.get("LOCAL_STATE_DIR") or Path(__file__).resolve().parent.parent / ".local")
        info: dict[str, Any] = {}
        with_file = state / f"stack-{port}.json"
        if with_file.exists():
            info = json.loads(with_file.read_text())
        return cls(
            api=args.api or info.get("api") or f"http://127.0.0.1:{port}",
            sandbox=args.sandbox or info.get("sandbox") or f"http://127.0.0.1:{os.environ.get('SANDBOX_PORT', '3001')}",
            dynamodb=args.dynamodb
            or info.get("dynamodb")
            or f"http://127.0.0.1:{os.environ.get('DYNAMODB_PORT', '8000')}",
            table=info.get("table", "messenger-events"),
        )


@dataclass
class Chat:
    endpoints: Endpoints
    provider: str = "meta"
    user: str = field(default_factory=lambda: "9" + "".join(random.choices("0123456789", k=15)))
    timeout_s: float = 20.0
    out: Any = sys.stdout

    def __post_init__(self) -> None:
        secrets = sandbox_secrets()
        self.meta = secrets["meta"]
        self.vonage = secrets["vonage"]
        self.page_id = next(iter(self.meta["page_tokens"]))
        self.store = DynamoStore(self.endpoints.table, client=client("dynamodb", self.endpoints.dynamodb))
        self.seen = self._last_request_id()

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    # -- one message ------------------------------------------------------------------------------

    def send(self, text: str, kind: str = "text", value: str | None = None) -> int:
        """Send one user message; print the replies and their statuses. Returns the number of replies.

        `kind`: text, quick_reply (a tap on a quick-reply button, `value` = payload), postback (a tap on a
        template button), image (`value` = URL) or sticker. Vonage delivers only text and media.
        """
        if self.provider == "vonage" and kind in ("quick_reply", "postback", "sticker"):
            self.say(f"  ({kind} is a Meta-only event; Vonage delivers text and media)")
            return 0
        body, headers, path = self._signed(text, kind, value)
        status, answer = _http("POST", self.endpoints.api + path, body, headers)
        if status != 200:
            self.say(f"  ! webhook answered {status}: {answer}")
            return 0
        replies = self._wait_for_replies()
        if not replies:
            self.say(f"  (no reply within {self.timeout_s:.0f}s)")
            return 0
        ids = []
        for request in replies:
            line, message_id = _describe(request)
            self.say(f"bot> {line}")
            if message_id:
                ids.append(message_id)
        self._show_statuses(ids)
        return len(replies)

    def _signed(self, text: str, kind: str = "text", value: str | None = None) -> tuple[bytes, dict[str, str], str]:
        now_ms = payloads.now_ms()
        mid = f"m_chat_{uuid.uuid4().hex}"
        if self.provider == "meta":
            event = payloads.meta_message(self.user, self.page_id, now_ms, message={"mid": mid, "text": text})
            if kind == "quick_reply":
                event["message"]["quick_reply"] = {"payload": value}
            elif kind == "postback":
                del event["message"]
                event["postback"] = {"mid": mid, "title": text, "payload": value}
            elif kind in ("image", "sticker"):
                payload: dict[str, Any] = {"url": value or STICKER_URL}
                if kind == "sticker":
                    payload["sticker_id"] = STICKER_ID
                event["message"] = {"mid": mid, "attachments": [{"type": "image", "payload": payload}]}
            body, headers = payloads.signed_meta(
                payloads.meta_page(event, page_id=self.page_id, time_ms=now_ms), self.meta
            )
            return body, headers, "/meta/webhook"
        payload = payloads.vonage_inbound(str(uuid.uuid4()), page_id=self.page_id, user=self.user, text=text)
        if kind == "image":
            del payload["text"]
            payload.update(message_type="image", image={"url": value})
        body, headers = payloads.signed_vonage(payload, self.vonage)
        return body, headers, "/vonage/inbound"

    def _last_request_id(self) -> int:
        status, requests = _http("GET", f"{self.endpoints.sandbox}/_sandbox/requests")
        if status != 200 or not requests:
            return 0
        return max(r["id"] for r in requests)

    def _wait_for_replies(self) -> list[dict[str, Any]]:
        """Sends to this user after the last seen one; done once some arrived and 1 s passed quietly."""
        deadline = time.monotonic() + self.timeout_s
        found: list[dict[str, Any]] = []
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            query = urlencode({"recipient": self.user, "since": self.seen, "provider": self.provider})
            status, requests = _http("GET", f"{self.endpoints.sandbox}/_sandbox/requests?{query}")
            fresh = requests if status == 200 else []
            if fresh:
                found.extend(fresh)
                self.seen = max(r["id"] for r in fresh)
                quiet_since = time.monotonic()
            if any(200 <= r["status"] < 300 for r in found) and time.monotonic() - quiet_since > 1.0:
                break
            time.sleep(0.2)
        return found

    def _show_statuses(self, ids: list[str], wait_s: float = 6.0) -> None:
        if not ids:
            return
        shown: dict[str, str] = {}
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for message_id in ids:
                item = self.store.message(conversation_id(self.provider, self.page_id, self.user), message_id)
                status = (item or {}).get("status")
                if status and shown.get(message_id) != status:
                    shown[message_id] = status
                    self.say(f"     · {message_id[:18]}… {status}")
            if all(shown.get(m) in FINAL_STATUSES for m in ids):
                return
            time.sleep(0.25)

    # -- the prompt -------------------------------------------------------------------------------

    def command(self, line: str) -> bool:
        """Handle a /command. False means quit."""
        name, _, arg = line[1:].partition(" ")
        if name in ("quit", "exit", "q"):
            return False
        if name == "provider" and arg.strip() in ("meta", "vonage"):
            self.provider = arg.strip()
            self.say(f"  (provider is now {self.provider})")
        elif name == "user" and arg.strip():
            self.user = arg.strip()
            self.say(f"  (you are now user {self.user})")
        elif name == "tap" and arg.strip():
            self.send(arg.strip(), "quick_reply", arg.strip())
        elif name == "postback" and arg.strip():
            self.send(arg.strip().title(), "postback", arg.strip())
        elif name == "image" and arg.strip().startswith(("http://", "https://")):
            self.send("", "image", arg.strip())
        elif name == "sticker":
            self.send("", "sticker")
        else:
            self.say(
                "  commands: /provider meta|vonage, /user <psid>, /tap <quick-reply payload>, "
                "/postback <payload>, /image <url>, /sticker, /quit"
            )
        return True


def _http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    try:
        return http(method, url, body, headers, timeout=15)
    except OSError as exc:
        raise SystemExit(f"cannot reach {url} ({exc}). Is the local stack running (`make dev`)?") from None


def _describe(request: dict[str, Any]) -> tuple[str, str | None]:
    body, response, status = request.get("body") or {}, request.get("response") or {}, request.get("status", 0)
    if status >= 300:
        return f"(send failed: HTTP {status} {json.dumps(response)[:160]})", None
    if request["provider"] == "vonage":
        kind = body.get("message_type")
        text = body.get("text") if kind == "text" else f"[{kind}] {(body.get(kind) or {}).get('url')}"
        return str(text), response.get("message_uuid")
    if "sender_action" in body:
        return f"({body['sender_action']})", None
    message = body.get("message") or {}
    text = message.get("text") or f"[{(message.get('attachment') or {}).get('type')}]"
    buttons = " ".join(f"[{q.get('title')}]" for q in message.get("quick_replies") or [])
    return f"{text} {buttons}".strip(), response.get("message_id")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=["meta", "vonage"], default="meta")
    parser.add_argument("--user", help="the user's PSID (default: a random one per session)")
    parser.add_argument("--api", help="HTTP API base URL (default: the running stack's)")
    parser.add_argument("--sandbox", help="sandbox base URL")
    parser.add_argument("--dynamodb", help="DynamoDB Local URL")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for a reply")
    args = parser.parse_args(argv)
    chat = Chat(Endpoints.discover(args), provider=args.provider, timeout_s=args.timeout)
    if args.user:
        chat.user = args.user
    interactive = sys.stdin.isatty()
    if interactive:
        chat.say(
            f"Chatting as user {chat.user} with page {chat.page_id} via {chat.provider} "
            f"({chat.endpoints.api}). /provider vonage switches, /quit leaves."
        )
    while True:
        if interactive:
            print(f"you ({chat.provider})> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            if not chat.command(line):
                break
            continue
        if not interactive:
            chat.say(f"you> {line}")
        chat.send(line)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
