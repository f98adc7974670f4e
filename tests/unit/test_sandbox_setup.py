"""The sandbox's setup edges refuse what Meta's and Vonage's would: wrong tokens, missing parameters, profiles
over Meta's limits, the 11th profile call in 10 minutes, Basic credentials that are not the account's."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from devkit.sandbox_secrets import SANDBOX_API_SECRET, SANDBOX_APP_ID
from local.sandbox import Sandbox, SandboxReject, meta_setup, vonage_apps
from tests.helpers import META, PAGE_ID, VONAGE

PAGE_TOKEN = META["page_tokens"][PAGE_ID]
APP_TOKEN = f"{SANDBOX_APP_ID}|{META['app_secret']}"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(None, log=lambda _line: None)


def graph(sandbox: Sandbox, method: str, node: str, edge: str, token: str, **params: Any) -> tuple[int, Any]:
    try:
        return meta_setup.handle(sandbox, method, node, edge, {"access_token": token}, {}, params)
    except SandboxReject as reject:
        return reject.status, reject.body


def code(answer: tuple[int, Any]) -> int | None:
    return answer[1].get("error", {}).get("code")


def test_app_subscriptions_need_the_app_token_and_every_parameter(sandbox: Sandbox) -> None:
    app = str(SANDBOX_APP_ID)
    assert code(graph(sandbox, "GET", app, "subscriptions", PAGE_TOKEN)) == 15
    assert code(graph(sandbox, "GET", app, "subscriptions", f"{app}|wrong-secret")) == 190
    assert code(graph(sandbox, "GET", "42", "subscriptions", APP_TOKEN)) == 100
    assert graph(sandbox, "GET", app, "subscriptions", APP_TOKEN) == (200, {"data": []})
    base = {
        "object": "page",
        "callback_url": "http://127.0.0.1:1/meta/webhook",
        "verify_token": "v",
        "fields": "messages",
    }
    for missing, words in (("verify_token", "verify_token is required"), ("fields", "fields is required")):
        status, body = graph(
            sandbox, "POST", app, "subscriptions", APP_TOKEN, **{k: v for k, v in base.items() if k != missing}
        )
        assert (status, body["error"]["code"]) == (400, 100) and words in body["error"]["message"]
    status, body = graph(sandbox, "POST", app, "subscriptions", APP_TOKEN, **{**base, "fields": "messages,nope"})
    assert body["error"]["code"] == 100 and "fields[1] must be one of" in body["error"]["message"]


def test_the_verify_handshake_only_ever_goes_to_loopback(sandbox: Sandbox) -> None:
    form = {
        "object": "page",
        "callback_url": "https://webhook.example.com/meta/webhook",
        "verify_token": "v",
        "fields": "messages",
    }
    status, body = graph(sandbox, "POST", str(SANDBOX_APP_ID), "subscriptions", APP_TOKEN, **form)
    assert (status, body["error"]["code"]) == (400, 2200)
    assert "the sandbox only calls loopback addresses" in body["error"]["message"]
    assert sandbox.meta_setup.subscriptions == {}


def test_a_page_subscription_needs_the_page_token_and_its_fields(sandbox: Sandbox) -> None:
    assert code(graph(sandbox, "POST", PAGE_ID, "subscribed_apps", APP_TOKEN, subscribed_fields="messages")) == 190
    assert code(graph(sandbox, "POST", "999", "subscribed_apps", PAGE_TOKEN, subscribed_fields="messages")) == 100
    assert (
        "subscribed_fields is required"
        in graph(sandbox, "POST", PAGE_ID, "subscribed_apps", PAGE_TOKEN)[1]["error"]["message"]
    )
    assert graph(
        sandbox, "POST", PAGE_ID, "subscribed_apps", PAGE_TOKEN, subscribed_fields=["messages", "standby"]
    ) == (
        200,
        {"success": True},
    )
    [app] = graph(sandbox, "GET", PAGE_ID, "subscribed_apps", PAGE_TOKEN)[1]["data"]
    assert (app["id"], app["subscribed_fields"]) == (str(SANDBOX_APP_ID), ["messages", "standby"])


def test_the_messenger_profile_is_checked_against_meta_limits_and_stored(sandbox: Sandbox) -> None:
    menu = [{"locale": "default", "call_to_actions": [{"type": "postback", "title": "Help", "payload": "HELP"}]}]
    # A menu without a Get Started button is refused; with one already set it is accepted
    refused = graph(sandbox, "POST", "me", "messenger_profile", PAGE_TOKEN, persistent_menu=menu)
    assert code(refused) == 100 and "persistent_menu needs get_started" in refused[1]["error"]["message"]
    assert graph(sandbox, "POST", "me", "messenger_profile", PAGE_TOKEN, get_started={"payload": "GO"})[0] == 200
    assert graph(sandbox, "POST", PAGE_ID, "messenger_profile", PAGE_TOKEN, persistent_menu=menu) == (
        200,
        {"result": "success"},
    )
    too_long = graph(
        sandbox, "POST", "me", "messenger_profile", PAGE_TOKEN, greeting=[{"locale": "default", "text": "x" * 161}]
    )
    assert code(too_long) == 100 and "160" in too_long[1]["error"]["message"]
    # A GET returns what was set (the menu with Meta's default composer flag), a DELETE removes it
    status, body = graph(sandbox, "GET", "me", "messenger_profile", PAGE_TOKEN, fields="get_started,persistent_menu")
    assert status == 200 and body["data"][0]["persistent_menu"][0]["composer_input_disabled"] is False
    assert graph(sandbox, "DELETE", "me", "messenger_profile", PAGE_TOKEN, fields=["persistent_menu"])[0] == 200
    assert graph(sandbox, "GET", "me", "messenger_profile", PAGE_TOKEN, fields="persistent_menu") == (200, {"data": []})
    assert code(graph(sandbox, "GET", "me", "messenger_profile", PAGE_TOKEN)) == 100, "fields is required"
    assert code(graph(sandbox, "GET", "me", "messenger_profile", "not-a-page-token", fields="greeting")) == 190


def test_the_eleventh_profile_call_in_ten_minutes_is_refused_with_the_time_to_wait(sandbox: Sandbox) -> None:
    for _ in range(10):
        assert graph(sandbox, "GET", "me", "messenger_profile", PAGE_TOKEN, fields="greeting")[0] == 200
    with pytest.raises(SandboxReject) as caught:
        meta_setup.handle(
            sandbox, "GET", "me", "messenger_profile", {"access_token": PAGE_TOKEN, "fields": "greeting"}, {}, {}
        )
    assert caught.value.body["error"]["code"] == 613
    usage = json.loads(caught.value.headers["x-business-use-case-usage"])
    assert usage[PAGE_ID][0]["estimated_time_to_regain_access"] == 10
    # The Page's other calls are not limited, and a reset (a new window) lets it call again
    assert graph(sandbox, "GET", PAGE_ID, "subscribed_apps", PAGE_TOKEN)[0] == 200
    sandbox.meta_setup.reset_rate_limits()
    assert graph(sandbox, "GET", "me", "messenger_profile", PAGE_TOKEN, fields="greeting")[0] == 200


def basic(key: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


def vonage(
    sandbox: Sandbox, method: str, headers: dict[str, str], body: Any = None, app: str | None = None
) -> tuple[int, Any]:
    try:
        return vonage_apps.handle(sandbox, method, app or VONAGE["application_id"], headers, body)
    except SandboxReject as reject:
        return reject.status, reject.body


def test_the_vonage_application_api_authenticates_and_validates_like_vonage(sandbox: Sandbox) -> None:
    good = basic(VONAGE["api_key"], SANDBOX_API_SECRET)
    assert vonage(sandbox, "GET", basic(VONAGE["api_key"], "wrong"))[0] == 401
    assert vonage(sandbox, "GET", {"authorization": f"Bearer {SANDBOX_API_SECRET}"})[0] == 401
    assert vonage(sandbox, "GET", good, app="00000000-0000-0000-0000-000000000000")[0] == 404
    status, application = vonage(sandbox, "GET", good)
    assert (
        status == 200 and application["capabilities"] == {} and "BEGIN PUBLIC KEY" in application["keys"]["public_key"]
    )
    bad = {
        "capabilities": {
            "messages": {"version": "v2", "webhooks": {"inbound_url": {"address": "ftp://x", "http_method": "GET"}}}
        }
    }
    status, body = vonage(sandbox, "PUT", good, bad)
    assert status == 400 and {p["name"] for p in body["invalid_parameters"]} == {
        "name",
        "capabilities.messages.version",
        "capabilities.messages.webhooks.inbound_url.address",
        "capabilities.messages.webhooks.inbound_url.http_method",
    }
    hooks = {"inbound_url": {"address": "https://a.example.com/in", "http_method": "POST"}}
    status, updated = vonage(
        sandbox, "PUT", good, {"name": "Shop", "capabilities": {"messages": {"version": "v1", "webhooks": hooks}}}
    )
    assert status == 200 and updated["name"] == "Shop" and updated["keys"] == application["keys"]
    assert vonage(sandbox, "GET", good)[1]["capabilities"]["messages"]["webhooks"] == hooks
