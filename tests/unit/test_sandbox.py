"""The sandbox providers refuse what the real APIs would: Meta's Send API limits, Vonage's parameters."""

from __future__ import annotations

from typing import Any

import pytest

from local.sandbox import Sandbox, SandboxReject, meta
from local.sandbox import vonage as vonage_api
from messenger.messages import Button, Element, OutgoingMessage, QuickReply, Template
from messenger.policy import SendPolicy
from messenger.providers.meta.send import plan_messages
from messenger.providers.vonage.auth import AppJwt
from tests.helpers import META, PAGE_ID, VONAGE


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(None, log=lambda _line: None)


def graph(sandbox: Sandbox, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = {"recipient": {"id": "psid"}, "messaging_type": "RESPONSE", "message": message}
    try:
        status, payload, _callback = meta.send(
            sandbox, PAGE_ID, {"access_token": META["page_tokens"][PAGE_ID]}, {}, body
        )
    except SandboxReject as reject:
        return reject.status, reject.body
    return status, payload


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"text": "x" * 2000}, "message[text] has 2000 characters"),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": "t" * 700,
                        "buttons": [{"type": "postback", "title": "b", "payload": "p"}],
                    },
                }
            },
            "the limit is 640",
        ),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": [{"title": "only a title"}]},
                }
            },
            "besides its title",
        ),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": [{"title": "t", "subtitle": "s" * 90}]},
                }
            },
            "subtitle has 90 characters",
        ),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": "t",
                        "buttons": [{"type": "postback", "title": "b", "payload": "p"}] * 4,
                    },
                }
            },
            "1 to 3 buttons",
        ),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": [{"title": "t", "subtitle": "s"}] * 11},
                }
            },
            "1 to 10 elements",
        ),
        ({"text": "x", "metadata": "m" * 1001}, "message[metadata] has 1001 characters"),
    ],
)
def test_graph_refuses_what_meta_refuses_with_error_100(sandbox, message, words):
    # Given a Send API request beyond Meta's documented limits / When the sandbox receives it
    status, payload = graph(sandbox, message)
    # Then it answers Meta's error 100 shape, naming the limit
    assert status == 400 and payload["error"]["code"] == 100 and payload["error"]["type"] == "OAuthException"
    assert payload["error"]["message"].startswith("(#100) param ") and words in payload["error"]["message"]


def test_graph_accepts_everything_our_planner_sends(sandbox):
    # Given replies at every limit, planned by the layer / When each body reaches the sandbox / Then 200
    button = Button("postback", "b" * 20, payload="p" * 1000)
    replies = [
        OutgoingMessage(text="y " * 2500, quick_replies=tuple(QuickReply(f"q{i}", "p") for i in range(13))),
        OutgoingMessage(template=Template("button", text="t" * 640, buttons=(button,) * 3)),
        OutgoingMessage(template=Template("generic", elements=(Element("e" * 80, subtitle="s" * 80),) * 10)),
    ]
    for body in plan_messages("psid", replies, SendPolicy("RESPONSE"), "m" * 1000):
        assert graph(sandbox, body["message"])[0] == 200


def vonage(sandbox: Sandbox, **fields: Any) -> tuple[int, dict[str, Any]]:
    token = AppJwt(VONAGE["application_id"], VONAGE["private_key"]).token()
    body = {
        "channel": "messenger",
        "message_type": "text",
        "to": "psid",
        "from": PAGE_ID,
        "text": "hi",
        "messenger": {"category": "response"},
        **fields,
    }
    try:
        status, payload, _callback = vonage_api.send(sandbox, {"authorization": f"Bearer {token}"}, body)
    except SandboxReject as reject:
        return reject.status, reject.body
    return status, payload


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"webhook_version": "v2"}, "webhook_version"),
        ({"webhook_version": 1}, "webhook_version"),
        ({"webhook_url": "ftp://example.com/status"}, "webhook_url"),
        ({"client_ref": "r" * 101}, "client_ref"),
        ({"text": "t" * 641}, "text"),
    ],
)
def test_vonage_refuses_invalid_parameters_with_422(sandbox, fields, name):
    # Given a Messages API request with a parameter the real API rejects / When sent / Then 422, naming it
    status, payload = vonage(sandbox, **fields)
    assert status == 422 and payload["title"] == "Invalid params"
    assert name in [p["name"] for p in payload["invalid_parameters"]]


@pytest.mark.parametrize("version", ["v0.1", "v1"])
def test_vonage_accepts_both_webhook_versions(sandbox, version):
    assert vonage(sandbox, webhook_version=version, webhook_url="https://example.com/status")[0] == 202
