"""The sandbox's callbacks reach the webhook even when it fails for a while, as the providers' retries do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from local.api_server import BackgroundHTTPServer
from local.sandbox import CALLBACK_RETRY, Sandbox
from local.sandbox.callbacks import post_callback


class _Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next status of the server's script (then 200)."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self.rfile.read(int(self.headers.get("content-length") or 0))
        with self.server.lock:
            status = self.server.script.pop(0) if self.server.script else 200
            self.server.received.append(status)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


@pytest.fixture
def webhook() -> Iterator[Any]:
    server = BackgroundHTTPServer(("127.0.0.1", 0), _Scripted)
    server.script, server.received, server.lock = [], [], threading.Lock()  # type: ignore[attr-defined]
    server.start()
    yield server
    server.stop()


def sandbox_for(server: Any) -> Sandbox:
    # A huge time scale turns the providers' real schedules (seconds to minutes) into milliseconds.
    return Sandbox(f"http://127.0.0.1:{server.server_address[1]}", retry_time_scale=100_000, log=lambda _: None)


def test_meta_callbacks_are_retried_until_accepted(webhook: Any) -> None:
    # Given a webhook that fails twice (a 503, then a 403 while a secret is being rotated)
    webhook.script[:] = [503, 403]
    sandbox = sandbox_for(webhook)
    # When the sandbox posts an echo
    post_callback(sandbox, "meta", "echo", "m_1", "/meta/webhook", b"{}", {})
    # Then Meta's schedule re-sent it until it was accepted, and the final answer is recorded
    assert webhook.received == [503, 403, 200]
    assert sandbox.callbacks[-1] | {"at": 0} == {
        "provider": "meta",
        "kind": "echo",
        "message_id": "m_1",
        "url": sandbox.webhook_base + "/meta/webhook",
        "status": 200,
        "attempts": 3,
        "at": 0,
    }


def test_vonage_does_not_retry_a_4xx_other_than_429(webhook: Any) -> None:
    webhook.script[:] = [429, 500, 401]
    sandbox = sandbox_for(webhook)
    post_callback(sandbox, "vonage", "delivered", "uuid-1", "/vonage/status", b"{}", {})
    assert webhook.received == [429, 500, 401], "429 and 5xx are retried, the 401 ends it"
    assert sandbox.callbacks[-1]["status"] == 401 and sandbox.callbacks[-1]["attempts"] == 3


def test_retries_stop_at_the_end_of_the_window(webhook: Any) -> None:
    webhook.script[:] = [500] * 100
    sandbox = sandbox_for(webhook)
    post_callback(sandbox, "meta", "read", "m_2", "/meta/webhook", b"{}", {})
    attempts = 1 + len(CALLBACK_RETRY["meta"].delays())
    assert webhook.received == [500] * attempts and sandbox.callbacks[-1]["attempts"] == attempts


def test_an_unreachable_webhook_is_retried() -> None:
    sandbox = Sandbox("http://127.0.0.1:9", retry_time_scale=100_000, log=lambda _: None)
    post_callback(sandbox, "vonage", "submitted", "uuid-2", "/vonage/status", b"{}", {})
    assert sandbox.callbacks[-1]["status"] == 0 and sandbox.callbacks[-1]["attempts"] > 1
