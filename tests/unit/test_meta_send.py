"""Meta Send API client: request shape, error classes, splitting, quick replies, sender actions (no network)."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses

from messenger.handover import BOT_METADATA
from messenger.messages import InboundMessage, OutgoingMessage, QuickReply
from messenger.policy import PolicyRefusedError, SendPolicy
from messenger.providers.meta.send import MetaSendClient, MetaSender, classify_error, plan_messages
from messenger.sending import AmbiguousSendError, PermanentSendError, TransientSendError

BASE = "https://graph.test"
URL = f"{BASE}/v25.0/123/messages"
TOKEN = "EAAB-secret-page-token"
APP_SECRET = "app-secret"
BODY = {"recipient": {"id": "psid"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}}


@pytest.fixture
def client() -> MetaSendClient:
    return MetaSendClient(BASE, "v25.0")


@responses.activate
def test_post_sends_token_proof_and_json(client):
    # Given the Send API accepts the message
    responses.post(URL, json={"recipient_id": "psid", "message_id": "m_1"})
    # When a message is posted
    result = client.post("123", TOKEN, APP_SECRET, BODY)
    # Then the token and its appsecret_proof are query parameters, the body is the JSON given
    request = responses.calls[0].request
    query = parse_qs(urlparse(request.url).query)
    assert query["access_token"] == [TOKEN]
    assert query["appsecret_proof"] == [hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()]
    assert json.loads(request.body) == BODY
    assert result.message_id == "m_1"


@pytest.mark.parametrize(
    ("status", "error", "cls", "code"),
    [
        (500, {"code": 2, "message": "x"}, TransientSendError, "meta_transient"),
        (400, {"code": 1, "message": "x"}, TransientSendError, "meta_transient"),
        (400, {"code": 4, "message": "x"}, TransientSendError, "meta_throttled"),
        (400, {"code": 17}, TransientSendError, "meta_throttled"),
        (400, {"code": 32}, TransientSendError, "meta_throttled"),
        (400, {"code": 341}, TransientSendError, "meta_throttled"),
        (400, {"code": 613}, TransientSendError, "meta_throttled"),
        (400, {"code": 80006}, TransientSendError, "meta_throttled"),
        (400, {"code": 1200}, TransientSendError, "meta_transient"),
        (400, {"code": 1, "error_subcode": 1357046}, AmbiguousSendError, "meta_invalid_json_reply"),
        (400, {"code": 10, "error_subcode": 2018278}, PermanentSendError, "meta_outside_window"),
        (403, {"code": 10}, PermanentSendError, "meta_10"),
        (400, {"code": 100}, PermanentSendError, "meta_100"),
        (401, {"code": 190}, PermanentSendError, "meta_token_invalid"),
        (403, {"code": 200}, PermanentSendError, "meta_200"),
        (403, {"code": 299}, PermanentSendError, "meta_299"),
        (400, {"code": 551, "error_subcode": 1545041}, PermanentSendError, "meta_551"),
        (400, {"code": 368}, PermanentSendError, "meta_368"),
        (429, {}, TransientSendError, "meta_http_transient"),
        (503, {}, TransientSendError, "meta_http_transient"),
        (404, {}, PermanentSendError, "meta_rejected"),
    ],
)
@responses.activate
def test_errors_are_classified(client, status, error, cls, code):
    # Given the Send API answers an error
    responses.post(URL, status=status, json={"error": {"type": "OAuthException", **error}} if error else {})
    # When a message is posted, Then the error class and code follow the spec
    with pytest.raises(cls) as info:
        client.post("123", TOKEN, APP_SECRET, BODY)
    assert info.value.code == code
    assert TOKEN not in str(info.value) and TOKEN not in json.dumps(info.value.details())


@responses.activate
def test_token_invalid_is_logged_as_operator_action_without_token(client, caplog):
    responses.post(URL, status=401, json={"error": {"code": 190, "message": f"bad token {TOKEN}"}})
    with pytest.raises(PermanentSendError) as info:
        client.post("123", TOKEN, APP_SECRET, BODY)
    assert TOKEN not in str(info.value)


def test_throttle_uses_business_use_case_header():
    response = requests.Response()
    response.status_code = 400
    response._content = json.dumps({"error": {"code": 80006}}).encode()
    response.headers["X-Business-Use-Case-Usage"] = json.dumps({"123": [{"estimated_time_to_regain_access": 2}]})
    error = classify_error(response)
    assert isinstance(error, TransientSendError) and error.retry_after == 120


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (requests.ConnectTimeout(f"{URL}?access_token={TOKEN}"), TransientSendError),
        (requests.ReadTimeout(f"{URL}?access_token={TOKEN}"), AmbiguousSendError),
        (requests.ConnectionError(f"{URL}?access_token={TOKEN} aborted"), AmbiguousSendError),
    ],
)
@responses.activate
def test_network_errors_never_leak_the_token(client, exc, cls):
    # Given the request fails in the network layer with an exception quoting the URL
    responses.post(URL, body=exc)
    # When it is posted, Then the class tells before/after sending and the token is nowhere
    with pytest.raises(cls) as info:
        client.post("123", TOKEN, APP_SECRET, BODY)
    assert TOKEN not in str(info.value) and info.value.__cause__ is None


@responses.activate
def test_refused_connection_is_transient():
    # Given nothing listens on the port (a real connection failure, before sending)
    client = MetaSendClient("http://127.0.0.1:9", "v25.0", timeout=(0.5, 0.5))
    responses.add_passthru("http://127.0.0.1:9")
    with pytest.raises(TransientSendError):
        client.post("123", TOKEN, APP_SECRET, BODY)


@responses.activate
def test_success_without_message_id_is_ambiguous(client):
    responses.post(URL, body="not json")
    with pytest.raises(AmbiguousSendError):
        client.post("123", TOKEN, APP_SECRET, BODY)


def test_long_text_is_split_on_whitespace_below_2000():
    # Given a 4,500-character text of words
    text = " ".join(["word"] * 900)
    # When it is planned
    bodies = plan_messages("psid", [OutgoingMessage(text=text)], SendPolicy())
    # Then it goes as several messages of at most 2,000 characters, cut between words, nothing lost
    texts = [b["message"]["text"] for b in bodies]
    assert len(texts) == 3 and all(len(t) <= 2000 for t in texts)
    assert all(not t.startswith(" ") and not t.endswith(" ") for t in texts)
    assert " ".join(texts) == text


def test_quick_replies_go_on_the_last_part_and_are_limited_to_13():
    quick = tuple(QuickReply(f"option {i}", f"P{i}") for i in range(13))
    bodies = plan_messages("psid", [OutgoingMessage(text="x " * 1500, quick_replies=quick)], SendPolicy())
    assert "quick_replies" not in bodies[0]["message"]
    assert len(bodies[-1]["message"]["quick_replies"]) == 13
    assert bodies[-1]["message"]["quick_replies"][0] == {"content_type": "text", "title": "option 0", "payload": "P0"}
    with pytest.raises(PermanentSendError):
        plan_messages("psid", [OutgoingMessage(text="x", quick_replies=(*quick, QuickReply("a", "b")))], SendPolicy())


def test_sender_action_goes_alone():
    bodies = plan_messages(
        "psid", [OutgoingMessage(sender_action="typing_on"), OutgoingMessage(text="hi")], SendPolicy()
    )
    assert bodies[0] == {"recipient": {"id": "psid"}, "sender_action": "typing_on"}
    assert "sender_action" not in bodies[1]
    with pytest.raises(ValueError):
        OutgoingMessage(text="hi", sender_action="typing_on")


def test_human_agent_tag_and_retired_tags():
    bodies = plan_messages("psid", [OutgoingMessage(text="hi")], SendPolicy("MESSAGE_TAG", "HUMAN_AGENT"))
    assert bodies[0]["messaging_type"] == "MESSAGE_TAG" and bodies[0]["tag"] == "HUMAN_AGENT"
    for tag in ("CONFIRMED_EVENT_UPDATE", "ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE"):
        with pytest.raises(PolicyRefusedError, match="retired"):
            plan_messages("psid", [OutgoingMessage(text="hi")], SendPolicy("MESSAGE_TAG", tag))


def test_attachment_message():
    bodies = plan_messages(
        "psid", [OutgoingMessage(attachment_url="https://x/y.png", attachment_type="image")], SendPolicy()
    )
    assert bodies[0]["message"] == {
        "attachment": {"type": "image", "payload": {"url": "https://x/y.png", "is_reusable": True}},
        "metadata": BOT_METADATA,
    }


def test_sender_records_the_text_of_its_bodies_and_looks_up_profiles():
    sender = MetaSender(MetaSendClient(BASE, "v25.0"), lambda: None)  # type: ignore[arg-type, return-value]
    inbound = InboundMessage("meta", "m_in", "message", "123", "psid", "meta#123#psid", 1_700_000_000_000)
    bodies = sender.plan(
        inbound, [OutgoingMessage(text="Hello"), OutgoingMessage(sender_action="typing_on")], SendPolicy()
    )
    assert [sender.body_text(body) for body in bodies] == ["Hello", None]
    assert (sender.initial_status, sender.has_profiles) == ("sent", True)
