"""Property-based checks of everything that reads untrusted input: it fails only with a domain error.

Budget: modest example counts and no deadline, so the whole file runs in a few seconds.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messenger.errors import MessengerError
from messenger.events import Kind
from messenger.inbound.request import raw_body
from messenger.providers.meta import events as meta_events
from messenger.providers.meta.signature import sign, verify_handshake, verify_signature
from messenger.providers.vonage import events as vonage_events
from messenger.providers.vonage.signature import payload_hash, verify_callback

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECRET = "property-test-signature-secret-0123456789abcdef"
API_KEY = "propkey"
NOW = 1_750_000_000

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
ids = st.one_of(st.text(min_size=1, max_size=20), st.integers(min_value=0, max_value=10**16))
# The keys a Meta or Vonage parser looks at, so generated objects often reach deep into the parsers.
META_KEYS = [
    "object",
    "entry",
    "id",
    "time",
    "messaging",
    "standby",
    "sender",
    "recipient",
    "timestamp",
    "message",
    "mid",
    "text",
    "is_echo",
    "attachments",
    "type",
    "payload",
    "url",
    "coordinates",
    "quick_reply",
    "reply_to",
    "postback",
    "delivery",
    "mids",
    "watermark",
    "read",
    "reaction",
    "referral",
    "optin",
    "account_linking",
    "pass_thread_control",
    "take_thread_control",
    "app_roles",
    "request_thread_control",
    "new_owner_app_id",
    "metadata",
    "app_id",
    "sticker_id",
    "user_ref",
]
VONAGE_KEYS = [
    "message_uuid",
    "channel",
    "message_type",
    "to",
    "from",
    "id",
    "timestamp",
    "text",
    "image",
    "audio",
    "video",
    "file",
    "url",
    "caption",
    "name",
    "message",
    "content",
    "type",
    "status",
    "error",
    "code",
    "reason",
    "title",
    "detail",
]


def shaped(keys: list[str]) -> st.SearchStrategy[Any]:
    """JSON whose objects use the parser's own keys, with any values."""
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(keys), inner, max_size=6),
        max_leaves=30,
    )


def only_domain_errors(call, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except MessengerError:
        return None


# -- arbitrary input never escapes as anything but a MessengerError -------------------------------------


@FAST
@given(st.binary(max_size=300))
def test_meta_parse_arbitrary_bytes(data):
    # Given any bytes / When parsed as a Meta body / Then a list of events or a MessengerError
    only_domain_errors(meta_events.parse_body, data)


@FAST
@given(json_values | shaped(META_KEYS))
def test_meta_parse_arbitrary_json(value):
    # Given any JSON value, often shaped like a Meta body / When parsed / Then events or a MessengerError
    only_domain_errors(meta_events.parse_body, json.dumps(value).encode())


@FAST
@given(
    st.fixed_dictionaries(
        {
            "object": st.just("page"),
            "entry": st.lists(
                shaped(META_KEYS)
                | st.fixed_dictionaries(
                    {"id": ids, "time": scalars, "messaging": st.lists(shaped(META_KEYS), max_size=3)}
                ),
                max_size=3,
            ),
        }
    )
)
def test_meta_parse_page_bodies_with_arbitrary_items(value):
    # Given an object=page body whose entries and items are arbitrary / When parsed / Then no other exception
    only_domain_errors(meta_events.parse_body, json.dumps(value).encode())


@FAST
@given(st.binary(max_size=300))
def test_vonage_parse_arbitrary_bytes(data):
    # Given any bytes / When parsed as an inbound or status callback / Then an event or a MessengerError
    only_domain_errors(vonage_events.parse_inbound, data)
    only_domain_errors(vonage_events.parse_status, data)


@FAST
@given(json_values | shaped(VONAGE_KEYS))
def test_vonage_parse_arbitrary_json(value):
    # Given any JSON value, often shaped like a callback / When parsed both ways / Then no other exception
    raw = json.dumps(value).encode()
    only_domain_errors(vonage_events.parse_inbound, raw)
    only_domain_errors(vonage_events.parse_status, raw)


@FAST
@given(
    st.fixed_dictionaries(
        {
            "message_uuid": ids,
            "to": ids | shaped(VONAGE_KEYS),
            "from": ids | shaped(VONAGE_KEYS),
            "timestamp": scalars | st.text(max_size=40),
            "status": scalars,
            "message_type": scalars,
            "message": shaped(VONAGE_KEYS),
        },
        optional={"channel": scalars, "text": scalars, "error": json_values},
    )
)
def test_vonage_parse_near_valid_callbacks(value):
    # Given callbacks with the right keys and arbitrary values / When parsed / Then no other exception
    raw = json.dumps(value).encode()
    only_domain_errors(vonage_events.parse_inbound, raw)
    only_domain_errors(vonage_events.parse_status, raw)


@FAST
@given(st.datetimes(timezones=st.timezones() | st.none()), st.sampled_from(["iso", "utc", "z"]))
def test_vonage_timestamps_in_any_form_parse(moment, form):
    # Given any datetime written in one of Vonage's forms / When parsed / Then an int of milliseconds
    text = {
        "iso": moment.isoformat(),
        "utc": moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "z": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }[form]
    body = {
        "channel": "messenger",
        "message_uuid": "u",
        "to": "p",
        "from": "u",
        "timestamp": text,
        "message_type": "text",
        "text": "x",
    }
    event = only_domain_errors(vonage_events.parse_inbound, json.dumps(body).encode())
    assert event is None or isinstance(event.timestamp_ms, int)


@FAST
@given(
    st.binary(max_size=200),
    st.none() | st.text(max_size=80) | st.binary(max_size=40).map(bytes.hex),
    st.text(max_size=20),
)
def test_meta_verify_signature_arbitrary(body, header, secret):
    # Given any body, header and secret / When verified / Then it passes or raises a MessengerError
    only_domain_errors(verify_signature, secret, body, header)
    only_domain_errors(verify_signature, secret, body, None if header is None else "sha256=" + header)


@FAST
@given(
    st.text(max_size=20),
    st.none() | st.text(max_size=20),
    st.none() | st.text(max_size=20),
    st.none() | st.text(max_size=20),
)
def test_meta_handshake_arbitrary(configured, mode, token, challenge):
    # Given any handshake query / When verified / Then the challenge or a MessengerError
    result = only_domain_errors(verify_handshake, configured, mode, token, challenge)
    assert result is None or (result == challenge and token == configured and mode == "subscribe")


@FAST
@given(st.binary(max_size=200), st.none() | st.text(max_size=200))
def test_vonage_verify_arbitrary_header(body, authorization):
    # Given any body and Authorization text / When verified / Then claims or a MessengerError
    only_domain_errors(verify_callback, SECRET, API_KEY, body, authorization, clock=lambda: NOW)
    if authorization is not None:
        only_domain_errors(verify_callback, SECRET, API_KEY, body, "Bearer " + authorization, clock=lambda: NOW)


@FAST
@given(
    st.binary(max_size=100),
    st.dictionaries(
        st.sampled_from(["iat", "payload_hash", "api_key", "exp", "nbf", "jti", "iss", "aud"]), json_values, max_size=5
    ),
)
def test_vonage_verify_correctly_signed_arbitrary_claims(body, claims):
    # Given a correctly signed token whose claims are arbitrary JSON (signed below PyJWT's claim checks)
    full = {"iat": NOW, "payload_hash": payload_hash(body), "api_key": API_KEY, **claims}
    header = "Bearer " + jwt.api_jws.encode(json.dumps(full).encode(), SECRET, algorithm="HS256")
    # When verified
    result = only_domain_errors(verify_callback, SECRET, API_KEY, body, header, clock=lambda: NOW)
    # Then it passes only if the claims that matter are right
    if result is not None:
        assert result["payload_hash"].lower() == payload_hash(body)
        assert NOW - 300 <= result["iat"] <= NOW + 60
        assert result.get("api_key") in (None, API_KEY)  # null counts as absent


@FAST
@given(st.dictionaries(st.sampled_from(["body", "isBase64Encoded", "headers"]), json_values, max_size=3))
def test_raw_body_arbitrary_events(event):
    # Given an event whose body fields are any JSON values / When the body is read / Then bytes or a MessengerError
    result = only_domain_errors(raw_body, event, 1024)
    assert result is None or isinstance(result, bytes)


@FAST
@given(st.text(max_size=400), st.booleans())
def test_raw_body_arbitrary_strings(body, is_base64):
    # Given any string body, flagged base64 or not / When read / Then bytes or a MessengerError
    only_domain_errors(raw_body, {"body": body, "isBase64Encoded": is_base64}, 1024)


# -- valid generated Meta bodies round-trip ---------------------------------------------------------------

mid_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def meta_message_bodies(draw) -> tuple[dict[str, Any], list[str]]:
    """A valid Meta body: 1-3 entries, 1-3 messaging/standby items each, every message with a unique mid."""
    mids = draw(st.lists(mid_text.map(lambda s: "m_" + s), min_size=1, max_size=9, unique=True))
    pages = draw(st.lists(st.integers(10**14, 10**15 - 1).map(str), min_size=1, max_size=3, unique=True))
    entries: list[dict[str, Any]] = [
        {"id": page, "time": 1_700_000_000_000, "messaging": [], "standby": []} for page in pages
    ]
    for mid in mids:
        entry = draw(st.sampled_from(entries))
        user = str(draw(st.integers(10**15, 10**16 - 1)))
        echo = draw(st.booleans())
        sender, recipient = (entry["id"], user) if echo else (user, entry["id"])
        message: dict[str, Any] = {"mid": mid}
        if echo:
            message["is_echo"] = True
        if draw(st.booleans()):
            message["text"] = draw(st.text(max_size=30))
        else:
            message["attachments"] = [
                {
                    "type": draw(st.sampled_from(["image", "audio", "video", "file"])),
                    "payload": {"url": "https://cdn.example/" + draw(mid_text)},
                }
            ]
        key = draw(st.sampled_from(["messaging", "standby"]))
        entry[key].append(
            {
                "sender": {"id": sender},
                "recipient": {"id": recipient},
                "timestamp": draw(st.integers(0, 2**41)),
                "message": message,
            }
        )
    # Receipts without mids ride along; they must not disturb the messages.
    if draw(st.booleans()):
        entries[0]["messaging"].append(
            {"sender": {"id": "1"}, "recipient": {"id": entries[0]["id"]}, "timestamp": 1, "read": {"watermark": 1}}
        )
    return {"object": "page", "entry": entries}, mids


@FAST
@given(meta_message_bodies(), st.booleans())
def test_valid_meta_bodies_round_trip(generated, ensure_ascii):
    # Given a valid body, serialised with or without \\u escapes
    payload, mids = generated
    raw = json.dumps(payload, ensure_ascii=ensure_ascii).encode()
    # When it is verified with the production signer and parsed
    verify_signature(SECRET, raw, sign(SECRET, raw))
    events = meta_events.parse_body(raw)
    # Then every generated mid appears exactly once, as a message or an echo
    message_ids = [e.event_id for e in events if e.kind in (Kind.MESSAGE, Kind.ECHO)]
    assert sorted(message_ids) == sorted(mids)
    # And every event has an id, and standby items are never answered
    assert all(e.event_id for e in events)
    assert all(e.record_type.value != "inbound" for e in events if e.standby or e.from_page)
