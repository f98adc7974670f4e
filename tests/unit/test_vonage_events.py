"""Vonage inbound and status callbacks (webhook versions v1 and v0.1) -> normalised events. No I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from messenger.errors import BadRequestError
from messenger.events import Kind, Provider, RecordType
from messenger.providers.vonage.events import parse_inbound, parse_status

PAGE = "107083064136738"
USER = "3998527223577371"
UUID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
ISO_MS = 1_738_584_865_000  # 2025-02-03T12:14:25Z


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def v1(message_type: str = "text", **fields: Any) -> dict[str, Any]:
    return {
        "channel": "messenger",
        "message_uuid": UUID,
        "to": PAGE,
        "from": USER,
        "timestamp": "2025-02-03T12:14:25Z",
        "message_type": message_type,
        **fields,
    }


def v01(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_uuid": UUID,
        "timestamp": "2025-02-03T12:14:25.000Z",
        "to": {"type": "messenger", "id": PAGE},
        "from": {"type": "messenger", "id": USER},
        "message": {"content": content},
    }


# -- inbound ------------------------------------------------------------------------------------


def test_v1_text():
    # Given a v1 inbound text / When parsed
    event = parse_inbound(dumps(v1(text="Hello")))
    # Then it is an inbound message keyed by message_uuid: Page = to, user = from
    assert (event.provider, event.kind, event.event_id) == (Provider.VONAGE, Kind.MESSAGE, UUID)
    assert (event.page_id, event.user_id, event.text) == (PAGE, USER, "Hello")
    assert (event.message_type, event.payload_version, event.timestamp_ms) == ("text", "v1", ISO_MS)
    assert event.record_type is RecordType.INBOUND and event.conversation_id == f"vonage#{PAGE}#{USER}"


def test_v01_text_seed_example():
    # Given the v0.1 example from Vonage's docs (seed), with our Page id as to.id
    payload = {
        "message_uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        "to": {"type": "messenger", "id": PAGE},
        "from": {"type": "messenger", "id": "1111111111111111"},
        "timestamp": "2020-01-01T14:00:00.000Z",
        "message": {"content": {"type": "text", "text": "Hello from Facebook Messenger!"}},
    }
    # When parsed
    event = parse_inbound(dumps(payload))
    # Then it is the same normalised message as a v1 one
    assert event.kind is Kind.MESSAGE and event.record_type is RecordType.INBOUND
    assert (event.page_id, event.user_id) == (PAGE, "1111111111111111")
    assert (event.text, event.payload_version, event.message_type) == ("Hello from Facebook Messenger!", "v0.1", "text")
    assert event.timestamp_ms == 1_577_887_200_000


@pytest.mark.parametrize("kind", ["image", "audio", "video", "file"])
def test_v1_media(kind):
    # Given a v1 media message / When parsed / Then the url (and caption/name if any) is one attachment
    event = parse_inbound(dumps(v1(kind, **{kind: {"url": f"https://x/{kind}", "caption": "c", "name": "n"}})))
    (attachment,) = event.attachments
    assert (attachment.type, attachment.url, attachment.caption, attachment.name) == (
        kind,
        f"https://x/{kind}",
        "c",
        "n",
    )
    assert event.text is None and event.message_type == kind and event.record_type is RecordType.INBOUND


@pytest.mark.parametrize("kind", ["image", "audio", "video", "file"])
def test_v01_media(kind):
    # Given a v0.1 media message / When parsed / Then the same attachment comes out
    event = parse_inbound(dumps(v01({"type": kind, kind: {"url": f"https://x/{kind}"}})))
    assert [(a.type, a.url) for a in event.attachments] == [(kind, f"https://x/{kind}")]
    assert event.payload_version == "v0.1"


def test_v1_unsupported_is_a_message_kept_with_its_type():
    # Given a v1 message Vonage could not represent / When parsed / Then an answered message with its raw JSON
    payload = v1("unsupported")
    event = parse_inbound(dumps(payload))
    assert (event.kind, event.message_type, event.raw, event.text) == (Kind.MESSAGE, "unsupported", payload, None)
    assert event.record_type is RecordType.INBOUND


@pytest.mark.parametrize("kind", ["location", "reaction", "sticker", "custom"])
def test_v1_unknown_types_are_stored_raw_as_unknown(kind):
    # Given a v1 message of a type the Messenger channel does not document / When parsed
    payload = v1(kind, **{kind: {"whatsoever": 1}})
    event = parse_inbound(dumps(payload))
    # Then it is kept with its message_type and raw JSON as unknown: stored, never answered
    assert (event.kind, event.message_type, event.raw) == (Kind.UNKNOWN, kind, payload)
    assert event.text is None and event.attachments == [] and event.record_type is RecordType.EVENT
    assert event.event_id == UUID and event.error is None


@pytest.mark.parametrize(("kind", "expected"), [("unsupported", Kind.MESSAGE), ("location", Kind.UNKNOWN)])
def test_v01_other_types_stored_raw_with_message_type(kind, expected):
    # Given a v0.1 message of a type we do not model / When parsed / Then kept with its type and raw JSON
    payload = v01({"type": kind})
    event = parse_inbound(dumps(payload))
    assert event.message_type == kind and event.raw == payload and event.text is None and event.kind is expected


def test_unknown_fields_are_ignored():
    # Given extra fields (client_ref, _self, usage) / When parsed / Then they are kept only in raw
    event = parse_inbound(dumps(v1(text="x", client_ref="r", _self={"href": "h"}, usage={"price": "0"})))
    assert event.text == "x" and event.raw["client_ref"] == "r"


def test_v1_without_channel_is_still_v1():
    # Given a v1 body without channel / When parsed / Then message_type alone marks it v1
    payload = v1(text="x")
    del payload["channel"]
    assert parse_inbound(dumps(payload)).payload_version == "v1"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2025-02-03T12:14:25Z", ISO_MS),
        ("2025-02-03T12:14:25.000Z", ISO_MS),
        ("2025-02-03T12:14:25.123Z", ISO_MS + 123),
        ("2025-02-03 12:14:25 UTC", ISO_MS),
        ("2025-02-03T12:14:25+00:00", ISO_MS),
        ("2025-02-03T13:14:25+01:00", ISO_MS),
        ("2025-02-03T12:14:25", ISO_MS),
    ],
)
def test_both_timestamp_formats(timestamp, expected):
    # Given a timestamp in either of Vonage's formats / When parsed / Then epoch milliseconds in UTC
    assert parse_inbound(dumps(v1(text="x", timestamp=timestamp))).timestamp_ms == expected


@pytest.mark.parametrize("timestamp", [None, "", "yesterday", 12345])
def test_unparseable_timestamp_falls_back_to_now(timestamp, monkeypatch):
    # Given a missing or unreadable timestamp, and a fixed clock
    monkeypatch.setattr("messenger.providers.vonage.events.time.time", lambda: 1_800_000_000.5)
    # When parsed / Then the receive time is used
    assert parse_inbound(dumps(v1(text="x", timestamp=timestamp))).timestamp_ms == 1_800_000_000_500


@pytest.mark.parametrize(
    "payload",
    [
        {k: v for k, v in v1(text="x").items() if k != "message_uuid"},
        v1(text="x", message_uuid=""),
        v1(text="x", message_uuid=None),
        {k: v for k, v in v1(text="x").items() if k != "to"},
        {k: v for k, v in v1(text="x").items() if k != "from"},
        v1(text="x", to={"type": "messenger"}),
        v01({"type": "text", "text": "x"}) | {"from": {"type": "messenger"}},
    ],
)
def test_inbound_without_its_envelope_is_a_bad_request(payload):
    # Given an inbound body without the ids that key and route it / When parsed / Then BadRequestError
    with pytest.raises(BadRequestError):
        parse_inbound(dumps(payload))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (v1(text="x", channel="whatsapp"), "channel 'whatsapp' is not messenger"),
        (v1(text=None), "text missing"),
        (v1(text=5), "text missing"),
        (v1("image"), "image.url missing"),
        (v1("image", image={"caption": "no url"}), "image.url missing"),
        (v1("image", image="https://x"), "image.url missing"),
        (v1(""), "message_type missing"),
        (v1(7), "message_type missing"),
        (v01({"text": "no type"}), "type missing"),
        (v01({"type": "text"}), "text missing"),
        (v01({"type": "file", "file": {}}), "file.url missing"),
        ({"message_uuid": UUID, "to": PAGE, "from": USER}, "message_type missing"),
        ({"message_uuid": UUID, "to": PAGE, "from": USER, "message": "hi"}, "message_type missing"),
    ],
)
def test_inbound_we_cannot_read_is_kept_as_unknown(payload, reason):
    # Given a signed inbound callback with its envelope but a body we cannot read / When parsed
    event = parse_inbound(dumps(payload))
    # Then it is stored raw as unknown with the reason (a 4xx would make Vonage drop it), never answered
    assert (event.kind, event.event_id, event.page_id, event.user_id) == (Kind.UNKNOWN, UUID, PAGE, USER)
    assert event.error == {"code": "unparsed", "reason": reason} and event.raw == payload
    assert event.record_type is RecordType.EVENT


@pytest.mark.parametrize("raw", [b"", b"nope", b"[]", b"1", b'"x"'])
def test_inbound_not_an_object_is_bad_request(raw):
    # Given a body that is not a JSON object / When parsed / Then BadRequestError
    with pytest.raises(BadRequestError):
        parse_inbound(raw)


# -- status -------------------------------------------------------------------------------------


def status_v1(status: str = "delivered", **fields: Any) -> dict[str, Any]:
    return {
        "message_uuid": UUID,
        "to": USER,
        "from": PAGE,
        "timestamp": "2025-02-03T12:14:25Z",
        "status": status,
        "channel": "messenger",
        **fields,
    }


def status_v01(status: str = "delivered", **fields: Any) -> dict[str, Any]:
    return {
        "message_uuid": UUID,
        "to": {"type": "messenger", "id": USER},
        "from": {"type": "messenger", "id": PAGE},
        "timestamp": "2020-01-01T14:00:00.000Z",
        "status": status,
        **fields,
    }


@pytest.mark.parametrize("status", ["submitted", "delivered", "read", "rejected", "undeliverable"])
def test_status_v1(status):
    # Given a v1 status callback / When parsed
    event = parse_status(dumps(status_v1(status, client_ref="evt-1", usage={"currency": "EUR", "price": "0.01"})))
    # Then it is a status about our outbound message (Page = from, user = to), never answered
    assert (event.kind, event.status, event.mids) == (Kind.STATUS, status, [UUID])
    assert event.event_id == f"{UUID}#status#{status}"
    assert (event.page_id, event.user_id, event.from_page) == (PAGE, USER, True)
    assert (event.payload_version, event.timestamp_ms, event.error) == ("v1", ISO_MS, None)
    assert event.record_type is RecordType.EVENT


@pytest.mark.parametrize("status", ["submitted", "delivered", "read", "rejected", "undeliverable"])
def test_status_v01(status):
    # Given a v0.1 status callback (object to/from) / When parsed / Then the same normalised status
    event = parse_status(dumps(status_v01(status)))
    assert (event.page_id, event.user_id, event.status, event.payload_version) == (PAGE, USER, status, "v0.1")
    assert event.timestamp_ms == 1_577_887_200_000 and event.record_type is RecordType.EVENT


def test_status_v1_error_rfc7807():
    # Given a v1 rejection with an RFC 7807 error
    error = {
        "type": "https://developer.vonage.com/api-errors/messages#1340",
        "title": "1340",
        "detail": "Outside of the allowed window",
        "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
    }
    # When parsed / Then the code and reason are extracted
    event = parse_status(dumps(status_v1("rejected", error=error)))
    assert event.error == {"code": "1340", "reason": "Outside of the allowed window"}


def test_status_v1_error_numeric_title():
    # Given a v1 error whose title is a number / When parsed / Then the code is its string
    event = parse_status(dumps(status_v1("rejected", error={"title": 1340, "detail": "x"})))
    assert event.error == {"code": "1340", "reason": "x"}


def test_status_v01_error_code_reason():
    # Given a v0.1 rejection with {code, reason} / When parsed / Then the code and reason are extracted
    event = parse_status(dumps(status_v01("rejected", error={"code": 1340, "reason": "Outside of the allowed window"})))
    assert event.error == {"code": "1340", "reason": "Outside of the allowed window"}


@pytest.mark.parametrize("error", ["oops", 5, [], {}])
def test_status_odd_error_shapes(error):
    # Given an error that is not an object, or an empty one / When parsed / Then no exception
    event = parse_status(dumps(status_v1("rejected", error=error)))
    assert event.error in (None, {"code": None, "reason": None})


def test_status_is_lowercased_and_both_timestamp_formats():
    # Given an upper-case status with the "UTC" timestamp form / When parsed / Then normalised
    event = parse_status(dumps(status_v1("DELIVERED", timestamp="2025-02-03 12:14:25 UTC")))
    assert event.status == "delivered" and event.timestamp_ms == ISO_MS


@pytest.mark.parametrize(
    "payload",
    [
        {k: v for k, v in status_v1().items() if k != "message_uuid"},
        {k: v for k, v in status_v1().items() if k != "status"},
        status_v1(""),
        status_v1(status=None),
        {k: v for k, v in status_v1().items() if k != "from"},
        {k: v for k, v in status_v1().items() if k != "to"},
        status_v01(**{"from": {"type": "messenger"}}),
    ],
)
def test_status_missing_required_fields_are_bad_requests(payload):
    # Given a status lacking a required field / When parsed / Then BadRequestError
    with pytest.raises(BadRequestError):
        parse_status(dumps(payload))


def test_status_of_another_channel_is_kept_but_not_applied():
    # Given a status callback for an SMS message on the same application / When parsed
    event = parse_status(dumps(status_v1("delivered", channel="sms")))
    # Then it is stored as unknown (so it never moves one of our Messenger messages), with the reason
    assert event.kind is Kind.UNKNOWN
    assert event.error == {"code": "unparsed", "reason": "channel 'sms' is not messenger"}


def test_inbound_and_status_ids_never_collide():
    # Given an inbound message and a status for the same uuid / When parsed / Then their ids differ
    assert parse_inbound(dumps(v1(text="x"))).event_id != parse_status(dumps(status_v1())).event_id
