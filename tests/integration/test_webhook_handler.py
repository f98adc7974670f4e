"""The webhook Lambda in-process against DynamoDB Local and moto's Secrets Manager."""

from __future__ import annotations

import base64
import json

import pytest

from tests.helpers import (
    META,
    PAGE_ID,
    dumps,
    event_ref,
    load_handler,
    meta_body,
    meta_message,
    meta_post,
    vonage_inbound_v1,
    vonage_post,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def handler(stack_env):
    return load_handler("webhook").lambda_handler


def test_meta_verify_handshake_echoes_challenge(handler, lambda_context):
    from devkit.apigw_events import http_event

    # Given the verify token from the Meta secret
    query = {"hub.mode": "subscribe", "hub.verify_token": META["verify_token"], "hub.challenge": "1158201444"}
    # When Meta calls GET /meta/webhook
    response = handler(http_event("GET", "/meta/webhook", query=query), lambda_context)
    # Then the challenge comes back as plain text
    assert response["statusCode"] == 200
    assert response["body"] == "1158201444"
    assert response["headers"]["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "sandbox-verify-token", "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_meta_verify_rejects_wrong_token_or_mode(handler, lambda_context, query):
    from devkit.apigw_events import http_event

    response = handler(http_event("GET", "/meta/webhook", query=query), lambda_context)
    assert response["statusCode"] == 403
    assert "1" != response["body"]


def test_meta_batch_stores_every_event_once(handler, lambda_context, stack_env):
    # Given a batch with two entries and three messages
    body = {
        "object": "page",
        "entry": [
            {"id": PAGE_ID, "time": 1, "messaging": [meta_message("m_1"), meta_message("m_2", "two")]},
            {"id": PAGE_ID, "time": 2, "messaging": [meta_message("m_3", "three", sender="42")]},
        ],
    }
    raw = dumps(body)
    # When it is delivered twice
    first = handler(meta_post(raw), lambda_context)
    second = handler(meta_post(raw), lambda_context)
    # Then three inbound items exist, and the redelivery wrote nothing
    assert first["statusCode"] == 200 and json.loads(first["body"]) == {"stored": 3, "duplicates": 0}
    assert second["statusCode"] == 200 and json.loads(second["body"]) == {"stored": 0, "duplicates": 3}
    items = stack_env.items()
    assert sorted(i["event_id"] for i in items) == ["m_1", "m_2", "m_3"]
    assert {i["record_type"] for i in items} == {"inbound"}
    assert all(i["expires_at"] > i["received_at"] for i in items)


def test_meta_base64_body_is_verified_over_decoded_bytes(handler, lambda_context, stack_env):
    raw = dumps(meta_body(meta_message("m_b64", "h\u00e9llo")))
    event = meta_post(raw)
    event["body"] = base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True
    assert handler(event, lambda_context)["statusCode"] == 200
    assert stack_env.find("EVT#m_b64")["text"] == "h\u00e9llo"


@pytest.mark.parametrize(
    ("signature", "status"),
    [(None, 401), ("sha256=" + "0" * 64, 401), ("sha1=abc", 401), ("garbage", 401)],
)
def test_meta_bad_signature_rejected_and_nothing_stored(handler, lambda_context, stack_env, signature, status):
    raw = dumps(meta_body(meta_message("m_bad")))
    response = handler(meta_post(raw, signature=signature), lambda_context)
    assert response["statusCode"] == status
    assert stack_env.items() == []


def test_meta_tampered_body_rejected(handler, lambda_context, stack_env):
    raw = dumps(meta_body(meta_message("m_t", "pay 10")))
    event = meta_post(raw)
    event["body"] = event["body"].replace("pay 10", "pay 99")
    assert handler(event, lambda_context)["statusCode"] == 401
    assert stack_env.items() == []


@pytest.mark.parametrize(
    "raw", [b"not json", b"[]", b'{"object":"page"}', b'{"object":"user","entry":[]}', b'{"object":"page","entry":{}}']
)
def test_meta_signed_garbage_is_400_and_nothing_stored(handler, lambda_context, stack_env, raw):
    response = handler(meta_post(raw), lambda_context)
    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {"error": "bad_request"}
    assert stack_env.items() == []


def test_signed_batch_of_odd_events_is_200_and_every_message_stored_once(handler, lambda_context, stack_env, capsys):
    # Given a signed batch mixing every odd event kind Meta documents with ordinary messages
    odd = [
        {
            "recipient": {"id": PAGE_ID},
            "timestamp": 1234567890,  # checkbox-plugin opt-in: no sender
            "optin": {"ref": "pass-through", "user_ref": "checkbox-user-ref"},
        },
        {
            "recipient": {"id": PAGE_ID},
            "timestamp": 1458692752478,  # handover app_roles: no sender
            "app_roles": {"123456789": ["primary_receiver"]},
        },
        {
            "recipient": {"id": PAGE_ID},
            "timestamp": 1458692752478,  # policy enforcement: no sender
            "policy_enforcement": {"action": "block", "reason": "The bot violated our Platform Policies"},
        },
        {
            "sender": {"user_ref": "USER-REF-ID"},
            "recipient": {"id": PAGE_ID},
            "timestamp": "1527459824",
            "postback": {"mid": "m_postback_ref", "title": "Start", "payload": "START"},
        },  # string seconds
        {
            "sender": {"id": "3998527223577371"},
            "recipient": {"id": PAGE_ID},
            "timestamp": 1_700_000_000_000,
            "message_edit": {"mid": "m_1", "text": "edited", "num_edit": 1},
        },  # a type we do not model
        {"sender": {"id": "3998527223577371"}, "recipient": {"id": PAGE_ID}, "message": {"text": "no mid"}},
        "not an object",
    ]
    ordinary = [
        meta_message("m_odd_1", "first"),
        meta_message("m_odd_2", "second", sender="42"),
        meta_message("m_odd_3", "third"),
    ]
    body = {
        "object": "page",
        "entry": [
            {"id": PAGE_ID, "time": "1700000000", "messaging": [ordinary[0], *odd[:4]]},
            {"id": PAGE_ID, "time": 1_700_000_000_000, "messaging": [odd[4], ordinary[1], odd[5]], "standby": [odd[6]]},
            {"id": PAGE_ID, "time": 1_700_000_000_000, "messaging": [ordinary[2]]},
            "not an entry",
        ],
    }
    raw = dumps(body)
    # When it is delivered, and delivered again
    first = handler(meta_post(raw), lambda_context)
    second = handler(meta_post(raw), lambda_context)
    # Then both answers are 200, and every event is stored exactly once
    assert first["statusCode"] == 200 and json.loads(first["body"]) == {"stored": 11, "duplicates": 0}
    assert second["statusCode"] == 200 and json.loads(second["body"]) == {"stored": 0, "duplicates": 11}
    items = stack_env.items()
    inbound = sorted(i["event_id"] for i in items if i["record_type"] == "inbound")
    assert inbound == ["m_odd_1", "m_odd_2", "m_odd_3", "m_postback_ref"]
    kinds = sorted(i["kind"] for i in items if i["record_type"] != "inbound")
    assert kinds == ["handover", "optin", "policy_enforcement", *["unknown"] * 4]
    optin = next(i for i in items if i["kind"] == "optin")
    assert optin["user_id"] == "checkbox-user-ref" and optin["timestamp_ms"] == 1_234_567_890_000
    # And the unknown events are counted in a metric
    assert '"UnknownEvents":[4.0]' in capsys.readouterr().out.replace(" ", "")


def test_meta_batch_over_the_cap_is_413_and_nothing_stored(handler, lambda_context, stack_env):
    from messenger.providers.meta.events import MAX_EVENTS_PER_POST

    # Given a signed batch with one event more than Meta ever batches (small enough for the body limit)
    events = [
        {"sender": {"id": "1"}, "recipient": {"id": PAGE_ID}, "timestamp": 1, "read": {"watermark": i}}
        for i in range(MAX_EVENTS_PER_POST + 1)
    ]
    raw = dumps(meta_body(*events))
    assert len(raw) < 1_048_576
    # When it is delivered / Then 413, and nothing is stored
    response = handler(meta_post(raw), lambda_context)
    assert response["statusCode"] == 413 and json.loads(response["body"]) == {"error": "payload_too_large"}
    assert stack_env.items() == []


def test_lone_surrogates_in_a_signed_body_are_replaced(handler, lambda_context, stack_env):
    # Given signed Meta and Vonage bodies whose text holds lone UTF-16 surrogates (valid JSON escapes)
    meta_raw = dumps(meta_body(meta_message("m_sur", "a\ud800b"))).replace(b"\\ud800", b"\\ud800")
    vonage_raw = dumps(vonage_inbound_v1("aaaaaaaa-bbbb-4ccc-8ddd-00000000000f", "x\udfffy"))
    assert b"\\ud800" in meta_raw and b"\\udfff" in vonage_raw
    # When they are delivered
    assert handler(meta_post(meta_raw), lambda_context)["statusCode"] == 200
    assert handler(vonage_post("/vonage/inbound", vonage_raw), lambda_context)["statusCode"] == 200
    # Then the texts are stored with U+FFFD in place of each surrogate: valid UTF-8 everywhere
    texts = sorted(i["text"] for i in stack_env.items())
    assert texts == ["a\ufffdb", "x\ufffdy"]
    for text in texts:
        text.encode("utf-8")


def test_vonage_callbacks_we_cannot_read_are_stored_as_unknown(handler, lambda_context, stack_env):
    # Given signed Vonage callbacks with a valid envelope: an unknown type, another channel, a broken text
    bodies = [
        vonage_inbound_v1("aaaaaaaa-bbbb-4ccc-8ddd-000000000010")
        | {"message_type": "reaction", "reaction": {"action": "react"}},
        vonage_inbound_v1("aaaaaaaa-bbbb-4ccc-8ddd-000000000011") | {"channel": "whatsapp"},
        vonage_inbound_v1("aaaaaaaa-bbbb-4ccc-8ddd-000000000012") | {"text": {"not": "text"}, "extra": [1]},
    ]
    # When each is delivered / Then each is answered 200 and stored once as an unanswered unknown event
    for body in bodies:
        assert handler(vonage_post("/vonage/inbound", dumps(body)), lambda_context)["statusCode"] == 200
    items = stack_env.items()
    assert len(items) == 3 and {(i["kind"], i["record_type"]) for i in items} == {("unknown", "event")}


def test_oversized_body_is_413(handler, lambda_context, stack_env, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    from messenger.config import get_settings

    get_settings.cache_clear()
    raw = dumps(meta_body(meta_message("m_big", "x" * 4000)))
    assert handler(meta_post(raw), lambda_context)["statusCode"] == 413
    assert stack_env.items() == []


def test_vonage_inbound_v1_stored_once(handler, lambda_context, stack_env):
    raw = dumps(vonage_inbound_v1("aaaaaaaa-bbbb-4ccc-8ddd-000000000001"))
    assert handler(vonage_post("/vonage/inbound", raw), lambda_context)["statusCode"] == 200
    assert handler(vonage_post("/vonage/inbound", raw), lambda_context)["statusCode"] == 200
    items = stack_env.items()
    assert len(items) == 1
    assert items[0]["record_type"] == "inbound" and items[0]["text"] == "hello"
    assert items[0]["page_id"] == PAGE_ID


def test_vonage_unsigned_is_503_and_invalid_is_401(handler, lambda_context, stack_env):
    raw = dumps(vonage_inbound_v1("aaaaaaaa-bbbb-4ccc-8ddd-000000000002"))
    assert handler(vonage_post("/vonage/inbound", raw, authorization=None), lambda_context)["statusCode"] == 503
    assert (
        handler(vonage_post("/vonage/inbound", raw, authorization="Bearer x.y.z"), lambda_context)["statusCode"] == 401
    )
    assert stack_env.items() == []


def test_vonage_status_moves_forward_only(handler, lambda_context, stack_env):
    uuid = "aaaaaaaa-bbbb-4ccc-8ddd-000000000003"

    def status(name: str) -> int:
        body = {
            "message_uuid": uuid,
            "to": "3998527223577371",
            "from": PAGE_ID,
            "channel": "messenger",
            "timestamp": "2025-02-03T12:14:25Z",
            "status": name,
        }
        return handler(vonage_post("/vonage/status", dumps(body)), lambda_context)["statusCode"]

    assert status("submitted") == 200
    assert status("read") == 200
    assert status("delivered") == 200
    item = stack_env.find(f"MSG#{uuid}")
    assert item["status"] == "read"
    assert {event_ref(i["sk"]) for i in stack_env.items()} == {
        f"MSG#{uuid}",
        *(f"EVT#{uuid}#status#{s}" for s in ("submitted", "read", "delivered")),
    }


def test_storage_failure_is_503_so_the_provider_redelivers(handler, lambda_context, stack_env, monkeypatch):
    monkeypatch.setenv("EVENTS_TABLE", "no-such-table")
    from messenger.config import get_settings

    get_settings.cache_clear()
    raw = dumps(meta_body(meta_message("m_x")))
    response = handler(meta_post(raw), lambda_context)
    assert response["statusCode"] == 503
    assert json.loads(response["body"]) == {"error": "storage_unavailable"}


def test_secrets_never_logged(handler, lambda_context, stack_env, capsys):
    raw = dumps(meta_body(meta_message("m_log")))
    handler(meta_post(raw, signature="sha256=" + "1" * 64), lambda_context)
    handler(meta_post(raw), lambda_context)
    out = capsys.readouterr()
    for secret in (META["app_secret"], META["verify_token"], *META["page_tokens"].values()):
        assert secret not in out.out + out.err
