"""Meta webhook bodies -> normalised events: every kind, every entry, every messaging/standby item. No I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from messenger.errors import BadRequestError, PayloadTooLargeError
from messenger.events import Kind, Provider, RecordType
from messenger.providers.meta.events import MAX_EVENTS_PER_POST, PAGE_LEVEL_USER, parse_body

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
    message = {
        "mid": "m_q",
        "text": "Red",
        "quick_reply": {"payload": "COLOR_RED"},
        "reply_to": {"mid": "m_earlier", "is_self_reply": False},
    }
    # When parsed / Then the payload and the replied-to mid are kept
    event = one(item(message=message))
    assert event.quick_reply_payload == "COLOR_RED" and event.reply_to_mid == "m_earlier"
    assert event.record_type is RecordType.INBOUND


def test_numeric_ids_become_strings():
    # Given ids sent as numbers / When parsed / Then they are strings
    raw = {
        "sender": {"id": int(USER)},
        "recipient": {"id": int(PAGE)},
        "timestamp": TS,
        "message": {"mid": "m_n", "text": "x"},
    }
    event = parse_body(body(raw, page=int(PAGE)))[0]
    assert (event.page_id, event.user_id) == (PAGE, USER)


def test_user_ref_sender():
    # Given a message from a checkbox-plugin user identified by user_ref / When parsed / Then user_ref is the user
    raw = {
        "sender": {"user_ref": "ref-1"},
        "recipient": {"id": PAGE},
        "timestamp": TS,
        "message": {"mid": "m_r", "text": "x"},
    }
    assert one(raw).user_id == "ref-1"


def test_timestamp_falls_back_to_entry_time():
    # Given an event without its own timestamp / When parsed / Then the entry's time is used
    raw = item(message={"mid": "m_t", "text": "x"})
    del raw["timestamp"]
    assert one(raw).timestamp_ms == TS


# -- echoes -------------------------------------------------------------------------------------


def test_echo_sender_is_page():
    # Given the echo of a message our Page sent
    raw = {
        "sender": {"id": PAGE},
        "recipient": {"id": USER},
        "timestamp": TS,
        "message": {
            "is_echo": True,
            "app_id": 1517776481860111,
            "metadata": "reply:abc",
            "mid": "m_echo",
            "text": "hello, world!",
        },
    }
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
    event = one(
        item(
            postback={
                "mid": "m_pb",
                "title": "Start",
                "payload": "GET_STARTED",
                "referral": {"ref": "x", "source": "SHORTLINK", "type": "OPEN_THREAD"},
            }
        )
    )
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
        (
            "pass_thread_control",
            {"previous_owner_app_id": 1, "new_owner_app_id": 263902037430900, "metadata": "to inbox"},
            "263902037430900",
        ),
        (
            "take_thread_control",
            {"previous_owner_app_id": 5, "new_owner_app_id": 263902037430900, "metadata": "to inbox"},
            "263902037430900",
        ),
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


# -- events without a sender, string timestamps (Meta reference examples) -------------------------


def test_checkbox_plugin_optin_without_sender_is_keyed_by_user_ref():
    # Given a messaging_optins event from the checkbox plugin: no sender, the user only as optin.user_ref
    raw = {
        "recipient": {"id": PAGE},
        "timestamp": 1234567890,
        "optin": {"ref": "<PASS_THROUGH_PARAM>", "user_ref": "ref-from-checkbox"},
    }
    # When parsed
    event = one(raw)
    # Then it is an opt-in of that user_ref (seconds became milliseconds), stored as a plain event
    assert (event.kind, event.user_id, event.page_id) == (Kind.OPTIN, "ref-from-checkbox", PAGE)
    assert event.timestamp_ms == 1_234_567_890_000 and event.error is None
    assert event.record_type is RecordType.EVENT and event.conversation_id == f"meta#{PAGE}#ref-from-checkbox"


def test_marketing_optin_with_sender_and_placeholder_timestamp():
    # Given the messaging_optins reference example: a sender, and "TIMESTAMP" where a number belongs
    raw = {
        "sender": {"id": USER},
        "recipient": {"id": PAGE},
        "timestamp": "TIMESTAMP",
        "optin": {"type": "notification_messages", "payload": "x", "notification_messages_token": "t"},
    }
    # When parsed / Then an opt-in of the sender, timed by the entry
    event = one(raw)
    assert (event.kind, event.user_id, event.message_type, event.timestamp_ms) == (
        Kind.OPTIN,
        USER,
        "notification_messages",
        TS,
    )


def test_app_roles_without_sender_is_a_page_level_handover():
    # Given the messaging_handovers app_roles example: only the Page as recipient
    raw = {"recipient": {"id": PAGE}, "timestamp": 1458692752478, "app_roles": {"123456789": ["primary_receiver"]}}
    # When parsed
    event = one(raw)
    # Then it is a handover event about the Page, filed under the page-level user
    assert (event.kind, event.message_type, event.user_id) == (Kind.HANDOVER, "app_roles", PAGE_LEVEL_USER)
    assert event.timestamp_ms == 1458692752478 and event.record_type is RecordType.EVENT
    assert event.event_id.startswith("h-") and event.error is None


@pytest.mark.parametrize("key", ["policy_enforcement", "policy-enforcement"])
def test_policy_enforcement_without_sender(key):
    # Given the messaging_policy_enforcement example (current and older spelling of the key)
    raw = {
        "recipient": {"id": PAGE},
        "timestamp": 1458692752478,
        key: {"action": "block", "reason": "The bot violated our Platform Policies"},
    }
    # When parsed / Then it is a page-level policy enforcement event with its action
    event = one(raw)
    assert (event.kind, event.message_type, event.user_id) == (Kind.POLICY_ENFORCEMENT, "block", PAGE_LEVEL_USER)
    assert event.record_type is RecordType.EVENT and event.raw[key]["reason"].startswith("The bot")


def test_postback_with_user_ref_and_string_timestamp_in_seconds():
    # Given the messaging_postbacks reference example: sender.user_ref, "All JSON properties ... are strings"
    raw = {
        "sender": {"user_ref": "USER-REF-ID"},
        "recipient": {"id": PAGE},
        "timestamp": "1527459824",
        "postback": {"mid": "m_MESSAGE-ID", "title": "TITLE", "payload": "PAYLOAD"},
    }
    # When parsed / Then a postback of that user, its time in milliseconds
    event = one(raw)
    assert (event.kind, event.user_id, event.event_id, event.timestamp_ms) == (
        Kind.POSTBACK,
        "USER-REF-ID",
        "m_MESSAGE-ID",
        1_527_459_824_000,
    )


@pytest.mark.parametrize(
    ("entry_time", "expected"),
    [("1527459824", 1_527_459_824_000), ("1458692752478", 1458692752478), (1527459824, 1527459824000)],
)
def test_string_entry_time_in_seconds_or_milliseconds(entry_time, expected):
    # Given an event without timestamp in an entry whose time is a string or in seconds
    payload = {
        "object": "page",
        "entry": [
            {
                "id": PAGE,
                "time": entry_time,
                "messaging": [
                    {"sender": {"id": USER}, "recipient": {"id": PAGE}, "message": {"mid": "m_t", "text": "x"}}
                ],
            }
        ],
    }
    # When parsed / Then the entry's time, in milliseconds
    assert parse_body(json.dumps(payload).encode())[0].timestamp_ms == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"message_edit": {"mid": "m_1", "text": "edited", "num_edit": 1}},
        {"response_feedback": {"feedback": "Good response", "mid": "m_1"}},
        {"messaging_game_plays": {"game_id": "1"}},
    ],
)
def test_other_event_types_are_unknown_and_named(fields):
    # Given an event type we do not model / When parsed
    event = one(item(**fields))
    # Then it is kept raw as unknown, named by its key, not flagged as unreadable
    assert event.kind is Kind.UNKNOWN and event.message_type == next(iter(fields)) and event.error is None


def test_more_events_than_meta_batches_is_too_large():
    # Given one more event than Meta puts in a batch ("a maximum of 1000 updates")
    items = [item(read={"watermark": TS + i}) for i in range(MAX_EVENTS_PER_POST + 1)]
    # When parsed / Then it is refused whole (413) before any event is built; the maximum itself is accepted
    with pytest.raises(PayloadTooLargeError):
        parse_body(body(*items))
    assert len(parse_body(body(*items[:MAX_EVENTS_PER_POST]))) == MAX_EVENTS_PER_POST


def test_events_are_counted_across_entries_and_standby():
    # Given the cap spread over several entries, messaging and standby
    entries = [
        {"id": PAGE, "messaging": [item(read={"watermark": i})], "standby": [item(read={"watermark": -i})]}
        for i in range(3)
    ]
    raw = json.dumps({"object": "page", "entry": entries}).encode()
    # When parsed with a cap of 5 / Then 6 events are too many
    with pytest.raises(PayloadTooLargeError):
        parse_body(raw, max_events=5)
    assert len(parse_body(raw, max_events=6)) == 6


# -- standby, batches ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"message": {"mid": "m_sb", "text": "to the inbox"}},
        {"postback": {"title": "Start"}},
        {"read": {"watermark": TS}},
        {"delivery": {"watermark": TS}},
    ],
)
def test_standby_events_are_never_inbound(fields):
    # Given an event that arrives on standby (another app owns the thread) / When parsed
    event = one(item(**fields), standby=True)
    # Then it is stored as a plain event, never answered
    assert event.standby and event.record_type is RecordType.EVENT


def test_several_entries_and_several_messaging_items():
    # Given two entries, one with two messaging items and a standby item, one with a single item
    payload = {
        "object": "page",
        "entry": [
            {
                "id": PAGE,
                "time": TS,
                "messaging": [item(message={"mid": "m_1", "text": "a"}), item(read={"watermark": TS})],
                "standby": [item(message={"mid": "m_sb", "text": "c"})],
            },
            {
                "id": "999",
                "time": TS,
                "messaging": [
                    {
                        "sender": {"id": "42"},
                        "recipient": {"id": "999"},
                        "timestamp": TS,
                        "message": {"mid": "m_2", "text": "b"},
                    }
                ],
            },
        ],
    }
    # When parsed
    events = parse_body(json.dumps(payload).encode())
    # Then all four come out, in order, each with its own page
    assert [(e.page_id, e.kind, e.standby) for e in events] == [
        (PAGE, Kind.MESSAGE, False),
        (PAGE, Kind.READ, False),
        (PAGE, Kind.MESSAGE, True),
        ("999", Kind.MESSAGE, False),
    ]
    assert [e.event_id for e in events if e.kind is Kind.MESSAGE] == ["m_1", "m_sb", "m_2"]


def test_entry_without_events_and_empty_entry_list():
    # Given entries with no messaging (e.g. a feed change) and an empty list / When parsed / Then no events
    assert parse_body(b'{"object":"page","entry":[{"id":"1","time":1,"changes":[]}]}') == []
    assert parse_body(b'{"object":"page","entry":[]}') == []


# -- stable ids for events without mid ----------------------------------------------------------


def test_hash_id_is_stable_for_a_redelivery():
    # Given the same read receipt delivered twice, once with keys in another order and spacing
    first = body(item(read={"watermark": TS}))
    reordered = json.dumps(
        {
            "entry": [
                {
                    "messaging": [
                        {"read": {"watermark": TS}, "timestamp": TS, "recipient": {"id": PAGE}, "sender": {"id": USER}}
                    ],
                    "time": TS,
                    "id": PAGE,
                }
            ],
            "object": "page",
        },
        indent=2,
    ).encode()
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
        b"",
        b"not json",
        b"[]",
        b'"page"',
        b"null",
        b'{"entry":[]}',
        b'{"object":"instagram","entry":[]}',
        b'{"object":"page"}',
        b'{"object":"page","entry":{}}',
    ],
)
def test_a_wrong_envelope_is_a_bad_request(raw):
    # Given a body that is not JSON, not an object, not object=page or without an entry list
    # When parsed / Then BadRequestError: the only shape problems that refuse a POST
    with pytest.raises(BadRequestError):
        parse_body(raw)


def _entry(*items: Any, **entry: Any) -> bytes:
    return json.dumps(
        {"object": "page", "entry": [{"id": "1", "time": TS, "messaging": list(items), **entry}]}
    ).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"object":"page","entry":["x"]}', "entry is not an object"),
        (b'{"object":"page","entry":[{"time":1,"messaging":[{"sender":{"id":"2"}}]}]}', "entry.id missing"),
        (b'{"object":"page","entry":[{"id":"","messaging":[{"x":1}]}]}', "entry.id missing"),
        (b'{"object":"page","entry":[{"id":true,"messaging":[{"x":1}]}]}', "entry.id missing"),
        (b'{"object":"page","entry":[{"id":"1","messaging":{}}]}', "entry.messaging is not a list"),
        (b'{"object":"page","entry":[{"id":"1","standby":"x"}]}', "entry.standby is not a list"),
        (_entry(1), "messaging item is not an object"),
        (_entry({"recipient": {"id": "1"}, "timestamp": TS, "message": {"mid": "m"}}), "event has no sender"),
        (
            _entry({"sender": {"id": "2"}, "recipient": {"id": "1"}, "message": {"text": "no mid"}}),
            "message.mid missing",
        ),
        (
            _entry({"sender": {"id": "2"}, "recipient": {"id": "1"}, "message": {"mid": "m", "text": 5}}),
            "message.text must be a string",
        ),
        (
            _entry(
                {
                    "sender": {"id": "2"},
                    "recipient": {"id": "1"},
                    "message": {"mid": "m", "attachments": {"type": "image"}},
                }
            ),
            "message.attachments must be a list",
        ),
        (_entry({"sender": {"id": "2"}, "recipient": {"id": "1"}, "message": "hi"}), "message must be an object"),
        (_entry({"sender": {"id": "2"}, "recipient": {"id": "1"}, "postback": []}), "postback must be an object"),
        (_entry({"sender": {"id": "2"}, "recipient": {"id": "1"}, "read": "x"}), "read must be an object"),
        (_entry({"recipient": {"id": "1"}, "take_thread_control": {"new_owner_app_id": 1}}), "event has no sender"),
    ],
)
def test_an_event_we_cannot_read_is_kept_as_unknown(raw, reason):
    # Given a valid envelope holding one event in a shape we cannot read
    # When parsed
    events = parse_body(raw)
    # Then it is one unknown event with the reason, kept raw and never answered
    assert len(events) == 1
    event = events[0]
    assert event.kind is Kind.UNKNOWN and event.record_type is RecordType.EVENT
    assert event.error == {"code": "unparsed", "reason": reason}
    assert event.event_id.startswith("h-") and event.raw


def test_an_odd_event_never_costs_its_neighbours():
    # Given a batch where a broken event sits between two ordinary messages
    raw = _entry(
        item(message={"mid": "m_1", "text": "a"}),
        {"sender": {"id": USER}, "message": {"text": 5}},
        item(message={"mid": "m_2", "text": "b"}),
    )
    # When parsed / Then both messages come out as inbound, and the odd one as unknown
    events = parse_body(raw)
    assert [(e.kind, e.event_id) for e in events if e.kind is Kind.MESSAGE] == [
        (Kind.MESSAGE, "m_1"),
        (Kind.MESSAGE, "m_2"),
    ]
    assert [e.kind for e in events] == [Kind.MESSAGE, Kind.UNKNOWN, Kind.MESSAGE]


def test_deeply_nested_json_is_a_bad_request():
    # Given JSON nested far beyond any real payload / When parsed / Then BadRequestError, not RecursionError
    with pytest.raises(BadRequestError):
        parse_body(b"[" * 100_000 + b"]" * 100_000)
