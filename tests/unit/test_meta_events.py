"""Meta webhook bodies -> normalised events: every kind, every entry, every messaging/standby item. No I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from messenger.errors import BadRequestError
from messenger.models import Kind, Provider, RecordType
from messenger.providers.meta.events import parse_body

PAGE = "107083064136738"
USER = "3998527223577371"
TS = 1_700_000_000_000


def body(*items: dict[str, Any], standby: bool = False, page: str = PAGE) -> bytes:
    key = "standby" if standby else "messaging"
    return json.dumps({"object": "page", "entry": [{"id": page, "time": TS, key: list(items)}]}).encode()


def item(**fields: Any) -> dict[str, Any]:
    return {"sender": {"id": USER}, "recipient": {"id": PAGE}, "timestamp": TS, **fields}


def one(*items: dict[str, Any], **kwargs: Any):
    events = parse_body(body(*items, **kwargs))
    assert len(events) == 1
    return events[0]


# -- messages -----------------------------------------------------------------------------------


def test_text_message():
    # Given a user's text message
    # When parsed
    event = one(item(message={"mid": "m_1", "text": "hello, world!"}))
    # Then it is an inbound message from the user, keyed by its mid
    assert (event.provider, event.kind, event.event_id) == (Provider.META, Kind.MESSAGE, "m_1")
    assert (event.page_id, event.user_id, event.timestamp_ms) == (PAGE, USER, TS)
    assert event.text == "hello, world!" and not event.from_page and not event.standby
    assert event.record_type is RecordType.INBOUND
    assert event.conversation_id == f"meta#{PAGE}#{USER}"


@pytest.mark.parametrize("kind", ["image", "audio", "video", "file", "fallback", "reel", "template"])
def test_url_attachments(kind):
    # Given a message with one attachment of this type
    payload = {"url": f"https://cdn.example/{kind}", "title": "t"}
    # When parsed
    event = one(item(message={"mid": "m_a", "attachments": [{"type": kind, "payload": payload}]}))
    # Then the attachment keeps type, url and title; there is no text
    assert event.kind is Kind.MESSAGE and event.text is None
    (attachment,) = event.attachments
    assert (attachment.type, attachment.url, attachment.title) == (kind, f"https://cdn.example/{kind}", "t")


def test_fallback_attachment_title_at_top_level():
    # Given a fallback (shared link) whose title sits beside the payload / When parsed / Then the title is kept
    attachment = {"type": "fallback", "title": "A link", "url": "https://x", "payload": None}
    event = one(item(message={"mid": "m_f", "attachments": [attachment]}))
    assert event.attachments[0].title == "A link"


@pytest.mark.parametrize(
    "attachment",
    [
        {"type": "image", "payload": {"url": "https://cdn.example/like.png", "sticker_id": 369239263222822}},
        {"type": "sticker", "payload": {"url": "https://cdn.example/s.png", "sticker_id": "369239263222822"}},
    ],
)
def test_sticker_both_forms(attachment):
    # Given a sticker in the old (image + sticker_id) or new (sticker attachment) form
    # When parsed / Then the sticker id is kept as a string
    event = one(item(message={"mid": "m_s", "attachments": [attachment]}))
    assert event.attachments[0].sticker_id == "369239263222822"
    assert event.attachments[0].type == attachment["type"]


def test_location_attachment():
    # Given a location attachment / When parsed / Then its coordinates are floats
    attachment = {"type": "location", "payload": {"coordinates": {"lat": 52.5, "long": 13}}}
    event = one(item(message={"mid": "m_l", "attachments": [attachment]}))
    assert event.attachments[0].type == "location"
    assert event.attachments[0].coordinates == {"lat": 52.5, "long": 13.0}


def test_location_with_unusable_coordinates_drops_them():
    # Given coordinates that are not finite numbers (a bool, a string, an int too large for a float)
    raw = '{"object":"page","entry":[{"id":"%s","time":1,"messaging":[{"sender":{"id":"2"},"recipient":{"id":"%s"},'
    raw += '"message":{"mid":"m","attachments":[{"type":"location","payload":{"coordinates":'
    raw += '{"lat":true,"long":"13","alt":1%s}}}]}}]}]}'
    # When parsed / Then they are dropped rather than raising or storing a number DynamoDB refuses
    event = parse_body((raw % (PAGE, PAGE, "0" * 400)).encode())[0]
    assert event.attachments[0].coordinates is None


def test_attachment_without_type_or_payload():
    # Given an attachment with neither type nor payload / When parsed / Then it is kept as "unknown"
    event = one(item(message={"mid": "m_u", "attachments": [{}]}))
    assert event.attachments[0].type == "unknown" and event.attachments[0].url is None


def test_several_attachments_keep_order():
    # Given three attachments / When parsed / Then all three are kept in order
    attachments = [{"type": t, "payload": {"url": f"https://x/{t}"}} for t in ("image", "video", "file")]
    event = one(item(message={"mid": "m_3", "attachments": attachments}))
    assert [a.type for a in event.attachments] == ["image", "video", "file"]


def test_quick_reply_and_reply_to():
    # Given a quick reply tap that replies to an earlier message
    message = {"mid": "m_q", "text": "Red", "quick_reply": {"payload": "COLOR_RED"},
               "reply_to": {"mid": "m_earlier", "is_self_reply": False}}
    # When parsed / Then the payload and the replied-to mid are kept
    event = one(item(message=message))
    assert event.quick_reply_payload == "COLOR_RED" and event.reply_to_mid == "m_earlier"
    assert event.record_type is RecordType.INBOUND


def test_numeric_ids_become_strings():
    # Given ids sent as numbers / When parsed / Then they are strings
    raw = {"sender": {"id": int(USER)}, "recipient": {"id": int(PAGE)}, "timestamp": TS,
           "message": {"mid": "m_n", "text": "x"}}
    event = parse_body(body(raw, page=int(PAGE)))[0]
    assert (event.page_id, event.user_id) == (PAGE, USER)


def test_user_ref_sender():
    # Given a message from a checkbox-plugin user identified by user_ref / When parsed / Then user_ref is the user
    raw = {"sender": {"user_ref": "ref-1"}, "recipient": {"id": PAGE}, "timestamp": TS,
           "message": {"mid": "m_r", "text": "x"}}
    assert one(raw).user_id == "ref-1"


def test_timestamp_falls_back_to_entry_time():
    # Given an event without its own timestamp / When parsed / Then the entry's time is used
    raw = item(message={"mid": "m_t", "text": "x"})
    del raw["timestamp"]
    assert one(raw).timestamp_ms == TS


# -- echoes -------------------------------------------------------------------------------------


def test_echo_sender_is_page():
    # Given the echo of a message our Page sent
    raw = {"sender": {"id": PAGE}, "recipient": {"id": USER}, "timestamp": TS,
           "message": {"is_echo": True, "app_id": 1517776481860111, "metadata": "reply:abc",
                       "mid": "m_echo", "text": "hello, world!"}}
    # When parsed
    event = one(raw)
    # Then it is an echo about the user, stored but never answered
    assert event.kind is Kind.ECHO and event.from_page
    assert event.user_id == USER and event.page_id == PAGE
    assert (event.app_id, event.metadata) == ("1517776481860111", "reply:abc")
    assert event.record_type is RecordType.ECHO


def test_message_from_page_without_is_echo_is_an_echo():
    # Given a message whose sender is the Page but without is_echo / When parsed / Then still an echo
    raw = {"sender": {"id": PAGE}, "recipient": {"id": USER}, "timestamp": TS, "message": {"mid": "m_p", "text": "x"}}
    event = one(raw)
    assert event.kind is Kind.ECHO and event.record_type is RecordType.ECHO and event.user_id == USER


# -- delivery, read -----------------------------------------------------------------------------


def test_delivery_with_mids():
    # Given a delivery receipt naming two of our messages / When parsed
    event = one(item(delivery={"mids": ["m_out1", "m_out2"], "watermark": TS - 5}))
    # Then both mids and the watermark are kept; it is a plain event with a hash id
    assert event.kind is Kind.DELIVERY and event.mids == ["m_out1", "m_out2"] and event.watermark_ms == TS - 5
    assert event.record_type is RecordType.EVENT and event.event_id.startswith("h-")


def test_delivery_without_mids():
    # Given a delivery with only a watermark / When parsed / Then no mids, watermark kept
    event = one(item(delivery={"watermark": TS - 5}))
    assert event.kind is Kind.DELIVERY and event.mids == [] and event.watermark_ms == TS - 5


@pytest.mark.parametrize("mids", ["m_out1", 7, {"a": 1}, None])
def test_delivery_with_malformed_mids_names_no_message(mids):
    # Given a delivery whose mids is not a list / When parsed / Then no mid is invented from it
    event = one(item(delivery={"mids": mids, "watermark": TS}))
    assert event.kind is Kind.DELIVERY and event.mids == []


def test_read():
    # Given a read receipt / When parsed / Then it carries the watermark and is a plain event
    event = one(item(read={"watermark": TS - 1}))
    assert event.kind is Kind.READ and event.watermark_ms == TS - 1 and event.record_type is RecordType.EVENT


# -- postbacks, reactions, referrals, opt-ins, handover, account linking ---------------------------


def test_postback_with_mid():
    # Given a button tap / When parsed / Then it is inbound (answered), keyed by its mid
    event = one(item(postback={"mid": "m_pb", "title": "Start", "payload": "GET_STARTED",
                               "referral": {"ref": "x", "source": "SHORTLINK", "type": "OPEN_THREAD"}}))
    assert event.kind is Kind.POSTBACK and event.event_id == "m_pb"
    assert (event.postback_title, event.postback_payload) == ("Start", "GET_STARTED")
    assert event.record_type is RecordType.INBOUND


def test_postback_without_mid_gets_hash_id():
    # Given a postback without mid / When parsed / Then it gets a stable hash id
    event = one(item(postback={"title": "Start", "payload": "GET_STARTED"}))
    assert event.event_id.startswith("h-") and event.record_type is RecordType.INBOUND


def test_reaction():
    # Given a reaction to one of our messages / When parsed / Then emoji and target mid are kept
    event = one(item(reaction={"reaction": "love", "emoji": "\u2764", "action": "react", "mid": "m_out"}))
    assert event.kind is Kind.REACTION and event.reaction == "\u2764" and event.reply_to_mid == "m_out"
    assert event.record_type is RecordType.EVENT


def test_reaction_without_emoji_uses_name():
    # Given a reaction without emoji / When parsed / Then the reaction name is kept
    assert one(item(reaction={"reaction": "like", "action": "unreact", "mid": "m"})).reaction == "like"


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("referral", {"ref": "promo", "source": "SHORTLINK", "type": "OPEN_THREAD"}, Kind.REFERRAL),
        ("optin", {"type": "notification_messages", "payload": "p", "notification_messages_token": "t"}, Kind.OPTIN),
        ("account_linking", {"status": "linked", "authorization_code": "code"}, Kind.ACCOUNT_LINKING),
        ("account_linking", {"status": "unlinked"}, Kind.ACCOUNT_LINKING),
    ],
)
def test_simple_kinds(key, value, kind):
    # Given a referral, opt-in or account-linking event / When parsed / Then the kind is set, stored as an event
    event = one(item(**{key: value}))
    assert event.kind is kind and event.record_type is RecordType.EVENT
    assert event.raw[key] == value and event.event_id.startswith("h-")


@pytest.mark.parametrize(
    ("key", "value", "app_id"),
    [
        ("pass_thread_control", {"previous_owner_app_id": 1, "new_owner_app_id": 263902037430900,
                                 "metadata": "to inbox"}, "263902037430900"),
        ("take_thread_control", {"previous_owner_app_id": 5, "new_owner_app_id": 263902037430900,
                                 "metadata": "to inbox"}, "263902037430900"),
        ("request_thread_control", {"requested_owner_app_id": 123, "metadata": "to inbox"}, "123"),
        ("app_roles", {"123": ["primary_receiver"]}, None),
    ],
)
def test_handover(key, value, app_id):
    # Given a handover (conversation routing) event / When parsed
    event = one(item(**{key: value}))
    # Then it is a handover event, naming which one and the app involved
    assert event.kind is Kind.HANDOVER and event.message_type == key and event.app_id == app_id
    assert event.metadata == value.get("metadata") and event.record_type is RecordType.EVENT


def test_unknown_kind_is_stored_as_unknown():
    # Given an event type we do not model (e.g. message_edit) / When parsed
    event = one(item(message_edit={"mid": "m_1", "text": "edited", "num_edit": 1}))
    # Then it is kept as "unknown" with its raw JSON, and never answered
    assert event.kind is Kind.UNKNOWN and event.record_type is RecordType.EVENT
    assert event.raw["message_edit"]["text"] == "edited" and event.event_id.startswith("h-")


# -- standby, batches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [{"message": {"mid": "m_sb", "text": "to the inbox"}}, {"postback": {"title": "Start"}},
     {"read": {"watermark": TS}}, {"delivery": {"watermark": TS}}],
)
def test_standby_events_are_never_inbound(fields):
    # Given an event that arrives on standby (another app owns the thread) / When parsed
    event = one(item(**fields), standby=True)
    # Then it is stored as a plain event, never answered
    assert event.standby and event.record_type is RecordType.EVENT


def test_several_entries_and_several_messaging_items():
    # Given two entries, one with two messaging items and a standby item, one with a single item
    payload = {"object": "page", "entry": [
        {"id": PAGE, "time": TS, "messaging": [item(message={"mid": "m_1", "text": "a"}),
                                               item(read={"watermark": TS})],
         "standby": [item(message={"mid": "m_sb", "text": "c"})]},
        {"id": "999", "time": TS, "messaging": [{"sender": {"id": "42"}, "recipient": {"id": "999"},
                                                 "timestamp": TS, "message": {"mid": "m_2", "text": "b"}}]},
    ]}
    # When parsed
    events = parse_body(json.dumps(payload).encode())
    # Then all four come out, in order, each with its own page
    assert [(e.page_id, e.kind, e.standby) for e in events] == [
        (PAGE, Kind.MESSAGE, False), (PAGE, Kind.READ, False), (PAGE, Kind.MESSAGE, True),
        ("999", Kind.MESSAGE, False)]
    assert [e.event_id for e in events if e.kind is Kind.MESSAGE] == ["m_1", "m_sb", "m_2"]


def test_entry_without_events_and_empty_entry_list():
    # Given entries with no messaging (e.g. a feed change) and an empty list / When parsed / Then no events
    assert parse_body(b'{"object":"page","entry":[{"id":"1","time":1,"changes":[]}]}') == []
    assert parse_body(b'{"object":"page","entry":[]}') == []


# -- stable ids for events without mid ----------------------------------------------------------


def test_hash_id_is_stable_for_a_redelivery():
    # Given the same read receipt delivered twice, once with keys in another order and spacing
    first = body(item(read={"watermark": TS}))
    reordered = json.dumps({"entry": [{"messaging": [{"read": {"watermark": TS}, "timestamp": TS,
                                                      "recipient": {"id": PAGE}, "sender": {"id": USER}}],
                                       "time": TS, "id": PAGE}], "object": "page"}, indent=2).encode()
    # When both are parsed / Then the ids are equal
    assert parse_body(first)[0].event_id == parse_body(reordered)[0].event_id == parse_body(first)[0].event_id


@pytest.mark.parametrize(
    "other",
    [
        item(read={"watermark": TS + 1}),
        {**item(read={"watermark": TS}), "timestamp": TS + 1},
        {**item(read={"watermark": TS}), "sender": {"id": "other-user"}},
        item(delivery={"watermark": TS}),
    ],
)
def test_hash_id_differs_for_different_events(other):
    # Given two different events without mid / When parsed / Then their ids differ
    base = parse_body(body(item(read={"watermark": TS})))[0].event_id
    assert parse_body(body(other))[0].event_id != base


def test_hash_id_differs_per_page():
    # Given the same event on two pages / When parsed / Then the ids differ
    a = parse_body(body(item(read={"watermark": TS})))[0].event_id
    b = parse_body(body(item(read={"watermark": TS}), page="999"))[0].event_id
    assert a != b


# -- rejections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"", b"not json", b"[]", b'"page"', b"null",
        b'{"entry":[]}',
        b'{"object":"instagram","entry":[]}',
        b'{"object":"page"}',
        b'{"object":"page","entry":{}}',
        b'{"object":"page","entry":["x"]}',
        b'{"object":"page","entry":[{"time":1,"messaging":[]}]}',
        b'{"object":"page","entry":[{"id":"","messaging":[]}]}',
        b'{"object":"page","entry":[{"id":true,"messaging":[]}]}',
        b'{"object":"page","entry":[{"id":"1","messaging":{}}]}',
        b'{"object":"page","entry":[{"id":"1","messaging":[1]}]}',
        b'{"object":"page","entry":[{"id":"1","standby":"x"}]}',
        b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"recipient":{"id":"1"},"message":{"mid":"m"}}]}]}',
        b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"2"},"message":{"mid":"m"}}]}]}',
        b'{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},'
        b'"message":{"mid":"m"}}]}]}',
        b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},'
        b'"message":{"text":"no mid"}}]}]}',
        b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},'
        b'"message":{"mid":"m","text":5}}]}]}',
        b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},'
        b'"message":{"mid":"m","attachments":{"type":"image"}}}]}]}',
        b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},'
        b'"message":"hi"}]}]}',
        b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},'
        b'"postback":[]}]}]}',
    ],
)
def test_missing_or_malformed_required_fields_are_bad_requests(raw):
    # Given a body lacking a required field or with the wrong shape / When parsed / Then BadRequestError
    with pytest.raises(BadRequestError):
        parse_body(raw)


def test_deeply_nested_json_is_a_bad_request():
    # Given JSON nested far beyond any real payload / When parsed / Then BadRequestError, not RecursionError
    with pytest.raises(BadRequestError):
        parse_body(b"[" * 100_000 + b"]" * 100_000)
