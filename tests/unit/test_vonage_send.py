"""Vonage Messages API client and app JWT: request shape, claims, caching, error classes (no network)."""

from __future__ import annotations

import json
import threading

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization

from messenger.messages import InboundMessage, OutgoingMessage, QuickReply
from messenger.policy import SendPolicy
from messenger.providers.vonage.auth import AppJwt, AppJwtCache
from messenger.providers.vonage.send import VonageSendClient, VonageSender, plan_messages
from messenger.sending import AmbiguousSendError, PermanentSendError, TransientSendError
from tests.helpers import VONAGE as SECRET

BASE = "https://vonage.test"
URL = f"{BASE}/v1/messages"
APP_ID = SECRET["application_id"]
KEY = SECRET["private_key"]
INBOUND = InboundMessage(
    "vonage",
    "evt-" + "x" * 120,
    "message",
    "107083064136738",
    "3998527223577371",
    "vonage#107083064136738#3998527223577371",
    1_700_000_000_000,
)


def public_key():
    private = serialization.load_pem_private_key(KEY.encode(), password=None)
    return private.public_key()


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@responses.activate
def test_post_sends_bearer_app_jwt_and_json():
    # Given Vonage accepts the message
    responses.post(URL, status=202, json={"message_uuid": "uuid-1"})
    client = VonageSendClient(BASE)
    body = plan_messages(INBOUND, [OutgoingMessage(text="Thanks, got it")], SendPolicy())[0]
    # When it is posted
    result = client.post(APP_ID, KEY, body)
    # Then the body is the Messages API text shape and the JWT verifies with the app's public key
    request = responses.calls[0].request
    assert json.loads(request.body) == {
        "message_type": "text",
        "channel": "messenger",
        "from": "107083064136738",
        "to": "3998527223577371",
        "text": "Thanks, got it",
        "messenger": {"category": "response"},
        "client_ref": INBOUND.event_id[:100],
    }
    token = request.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, public_key(), algorithms=["RS256"])
    assert claims["application_id"] == APP_ID and claims["jti"] and claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(token)["typ"] == "JWT"
    assert result.message_id == "uuid-1"


def test_jwt_is_signed_at_most_once_per_1000_sends_and_refreshed_before_expiry():
    # Given a signer with a controllable clock
    clock = Clock()
    signer = AppJwt(APP_ID, KEY, clock=clock)
    # When 1,000 tokens are asked for within a few minutes
    tokens = set()
    for _ in range(1000):
        clock.now += 0.2
        tokens.add(signer.token())
    # Then one signature served them all
    assert signer.signatures == 1 and len(tokens) == 1
    # And 60 s before expiry a new token is signed
    clock.now = 1_700_000_000 + 900 - 59
    assert signer.token() not in tokens and signer.signatures == 2


def test_jwt_cache_is_thread_safe():
    cache = AppJwtCache()
    tokens: list[str] = []

    def work() -> None:
        for _ in range(50):
            tokens.append(cache.signer(APP_ID, KEY).token())

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and cache.signatures == 1


def test_bad_private_key_does_not_leak():
    from messenger.errors import SecretUnavailableError

    with pytest.raises(SecretUnavailableError) as info:
        AppJwt(APP_ID, "-----BEGIN PRIVATE KEY-----\nnot-a-key-secret\n-----END PRIVATE KEY-----")
    assert "not-a-key-secret" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (429, TransientSendError, "vonage_throttled"),
        (500, TransientSendError, "vonage_server_error"),
        (503, TransientSendError, "vonage_server_error"),
        (401, PermanentSendError, "vonage_unauthorized"),
        (402, PermanentSendError, "vonage_402"),
        (422, PermanentSendError, "vonage_422"),
    ],
)
@responses.activate
def test_errors_are_classified(status, cls, code):
    responses.post(
        URL, status=status, json={"type": "https://developer.vonage.com/api-errors#x", "title": "t", "detail": "d"}
    )
    with pytest.raises(cls) as info:
        VonageSendClient(BASE).post(APP_ID, KEY, {"x": 1})
    assert info.value.code == code and info.value.http_status == status


@pytest.mark.parametrize(
    ("exc", "cls"),
    [(requests.ConnectTimeout("x"), TransientSendError), (requests.ReadTimeout("x"), AmbiguousSendError)],
)
@responses.activate
def test_timeouts(exc, cls):
    responses.post(URL, body=exc)
    with pytest.raises(cls):
        VonageSendClient(BASE).post(APP_ID, KEY, {"x": 1})


@responses.activate
def test_accepted_without_uuid_is_ambiguous():
    responses.post(URL, status=202, body="")
    with pytest.raises(AmbiguousSendError):
        VonageSendClient(BASE).post(APP_ID, KEY, {"x": 1})


def test_text_split_at_640_and_tag_category():
    text = " ".join(["abcdefghi"] * 200)  # 1,999 characters
    bodies = plan_messages(
        INBOUND,
        [OutgoingMessage(text=text, quick_replies=(QuickReply("a", "b"),))],
        SendPolicy("MESSAGE_TAG", "HUMAN_AGENT"),
    )
    assert len(bodies) == 4 and all(len(b["text"]) <= 640 for b in bodies)
    assert " ".join(b["text"] for b in bodies) == text
    assert bodies[0]["messenger"] == {"category": "message_tag", "tag": "HUMAN_AGENT"}
    assert "quick_replies" not in bodies[-1]


def test_attachment_and_sender_action():
    bodies = plan_messages(
        INBOUND,
        [
            OutgoingMessage(sender_action="typing_on"),
            OutgoingMessage(attachment_url="https://x/a.png", attachment_type="image"),
        ],
        SendPolicy(),
    )
    assert (
        len(bodies) == 1 and bodies[0]["message_type"] == "image" and bodies[0]["image"] == {"url": "https://x/a.png"}
    )


def test_sender_records_the_text_of_its_bodies_and_has_no_profiles():
    sender = VonageSender(VonageSendClient(BASE), lambda: None)  # type: ignore[arg-type, return-value]
    bodies = sender.plan(
        INBOUND,
        [
            OutgoingMessage(text="Thanks"),
            OutgoingMessage(attachment_url="https://x.test/a.png", attachment_type="image"),
        ],
        SendPolicy(),
    )
    assert [sender.body_text(body) for body in bodies] == ["Thanks", None]
    assert (sender.initial_status, sender.has_profiles, sender.first_name(INBOUND)) == ("submitted", False, None)
