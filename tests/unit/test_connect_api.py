"""`make connect`'s provider calls: bounded retries, and a clear message for each Graph and Vonage error."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from devkit.http_client import Reply
from tools.connect import api
from tools.connect.api import Caller, ConnectError
from tools.connect.cli import Output
from tools.connect.graph import Token, graph_error
from tools.connect.vonage import update_body, vonage_error

PAGE = Token("page-token-value", "Page 1's token", "put a fresh Page access token", "pages_messaging")


def graph(
    code: int, status: int = 400, subcode: int | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> Reply:
    error = {"message": f"(#{code}) message", "type": "OAuthException", "code": code, **extra}
    if subcode:
        error["error_subcode"] = subcode
    return Reply(status, {"error": error}, headers or {})


class Script:
    """Stands in for devkit.http_client.request: answers each call with the next reply (or raises it)."""

    def __init__(self, *replies: Reply | OSError) -> None:
        self.replies = list(replies)
        self.urls: list[str] = []

    def __call__(self, method: str, url: str, *args: Any) -> Reply:
        self.urls.append(url)
        reply = self.replies.pop(0)
        if isinstance(reply, OSError):
            raise reply
        return reply


def caller(monkeypatch: pytest.MonkeyPatch, *replies: Reply | OSError) -> tuple[Caller, list[float]]:
    monkeypatch.setattr(api, "request", Script(*replies))
    sleeps: list[float] = []
    return Caller(sleep=sleeps.append), sleeps


def test_transient_failures_are_retried_with_a_doubling_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no answer, then a Graph 500 (code 2), then success
    call, sleeps = caller(monkeypatch, ConnectionResetError(), graph(2, status=500), Reply(200, {"success": True}, {}))
    # When the call is made
    answer = call.call("POST", "https://graph.example/x?access_token=secret", lambda r: graph_error(r, PAGE))
    # Then it was tried three times, pausing 1 s then 2 s
    assert answer == {"success": True} and call.calls == 3 and sleeps == [1.0, 2.0]


def test_retries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    call, sleeps = caller(monkeypatch, *[graph(1, status=500)] * 3)
    with pytest.raises(ConnectError, match="gave up after 3 attempts") as caught:
        call.call("GET", "https://graph.example/x", lambda r: graph_error(r, PAGE))
    assert call.calls == 3 and sleeps == [1.0, 2.0]
    assert "access_token" not in str(caught.value)


def test_no_answer_names_the_host_only(monkeypatch: pytest.MonkeyPatch) -> None:
    call, _ = caller(monkeypatch, *[TimeoutError()] * 3)
    with pytest.raises(ConnectError) as caught:
        call.call(
            "GET", "https://graph.example:8443/v25.0/me?access_token=page-token-value", lambda r: graph_error(r, PAGE)
        )
    assert "no answer from graph.example:8443 (TimeoutError)" in str(caught.value)
    assert "page-token-value" not in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "words", "retried"),
    [
        (graph(190, subcode=463), "Page 1's token is expired or invalid (Graph code 190/463): put a fresh Page", False),
        (graph(200), "permission missing (Graph code 200): Page 1's token needs pages_messaging", False),
        (graph(10), "permission missing (Graph code 10)", False),
        (graph(2200, message="(#2200) Callback verification failed"), "Meta could not verify the callback URL", False),
        (
            graph(100, message="(#100) Param x is bad"),
            "Graph answered 400 (Graph code 100): (#100) Param x is bad",
            False,
        ),
        (graph(1, status=500), "Graph answered 500", True),
        (graph(1234, is_transient=True), "Graph answered 400", True),
    ],
)
def test_each_graph_error_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, reply: Reply, words: str, retried: bool
) -> None:
    call, _ = caller(monkeypatch, *[reply] * 3)
    with pytest.raises(ConnectError) as caught:
        call.call("GET", "https://graph.example/x", lambda r: graph_error(r, PAGE))
    assert words in str(caught.value)
    assert call.calls == (3 if retried else 1)


def test_a_rate_limit_is_not_retried_and_says_how_long_to_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    usage = {"1": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 7}]}
    reply = graph(613, headers={"x-business-use-case-usage": json.dumps(usage)})
    call, sleeps = caller(monkeypatch, reply)
    with pytest.raises(ConnectError) as caught:
        call.call("POST", "https://graph.example/x", lambda r: graph_error(r, PAGE, "wait up to 10 minutes"))
    assert str(caught.value) == "rate limited by Meta (Graph code 613): wait 7 minutes, then run again"
    assert caught.value.wait_s == 420 and call.calls == 1 and sleeps == []
    # Without Meta's estimate, the caller's own advice (the profile API's window) is given
    error = graph_error(graph(4, status=429), PAGE, "the Messenger Profile API allows 10 calls: wait up to 10 minutes")
    assert "wait up to 10 minutes" in str(error) and error.wait_s is None


@pytest.mark.parametrize(
    ("reply", "words", "retryable"),
    [
        (Reply(401, {"title": "Unauthorized"}, {}), "Vonage refused the API key and secret (401)", False),
        (Reply(403, {"title": "Forbidden", "detail": "no"}, {}), "permission missing (Vonage 403)", False),
        (Reply(404, {"title": "Not Found"}, {}), "no such application for this API key (404)", False),
        (
            Reply(429, {"title": "Rate Limit Hit"}, {"retry-after": "120"}),
            "rate limited by Vonage (429): wait 2 minutes",
            False,
        ),
        (
            Reply(400, {"title": "Bad Request", "invalid_parameters": [{"name": "name", "reason": "is required"}]}, {}),
            "(name: is required)",
            False,
        ),
        (Reply(503, {"title": "Service Unavailable"}, {}), "Vonage answered 503", True),
    ],
)
def test_each_vonage_error_says_what_to_do(reply: Reply, words: str, retryable: bool) -> None:
    error = vonage_error(reply)
    assert words in str(error) and error.retryable is retryable


def test_the_vonage_update_changes_only_the_messages_webhooks_and_version() -> None:
    # Given an application with voice and an older Messages setup
    application = {
        "id": "app-1",
        "name": "Shop",
        "capabilities": {
            "voice": {"webhooks": {"answer_url": {"address": "https://v.example.com/answer", "http_method": "GET"}}},
            "messages": {"version": "v0.1", "authenticate_inbound_media": True, "webhooks": {}},
        },
        "privacy": {"improve_ai": False},
        "keys": {"public_key": "PEM"},
    }
    body = update_body(application, "https://api.example.com/vonage/inbound", "https://api.example.com/vonage/status")
    # Then the PUT keeps the name, voice, privacy and the media setting, and sets the two URLs and v1
    assert body == {
        "name": "Shop",
        "capabilities": {
            "voice": application["capabilities"]["voice"],
            "messages": {
                "version": "v1",
                "authenticate_inbound_media": True,
                "webhooks": {
                    "inbound_url": {"address": "https://api.example.com/vonage/inbound", "http_method": "POST"},
                    "status_url": {"address": "https://api.example.com/vonage/status", "http_method": "POST"},
                },
            },
        },
        "privacy": {"improve_ai": False},
    }
    assert application["capabilities"]["messages"]["version"] == "v0.1", "the application read is not changed"


def test_every_output_line_is_scrubbed_of_the_secret_values() -> None:
    # Given a provider message that quotes a token (Meta's messages do not, but nothing relies on that)
    out = io.StringIO()
    say = Output(out, ["page-token-value", "app-secret-value"])
    say("Graph answered 400: Invalid token page-token-value for app 1|app-secret-value")
    assert out.getvalue() == "Graph answered 400: Invalid token *** for app 1|***\n"
