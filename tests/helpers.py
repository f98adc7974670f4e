"""Test helpers: load the handlers as sam would, sign bodies with the production signers (devkit.payloads)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

from devkit import payloads
from devkit.apigw_events import http_event
from devkit.lambda_code import load_function
from devkit.sandbox_secrets import sandbox_secrets
from messenger.events import Event, Kind, Provider
from messenger.storage import event_item, to_item

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
SECRETS = sandbox_secrets()
META = SECRETS["meta"]
VONAGE = SECRETS["vonage"]
PAGE_ID = next(iter(META["page_tokens"]))


def assert_no_secret_in(text: str, secrets: dict[str, dict[str, Any]] = SECRETS) -> None:
    """No value of `secrets` (each provider's secret; page tokens included) appears in `text`."""
    for provider, secret in secrets.items():
        for key, value in secret.items():
            if key == "page_tokens":
                value = list(value.values())
            for candidate in value if isinstance(value, list) else [value]:
                for piece in [candidate, *candidate.splitlines()]:
                    if len(piece) >= 8 and "-----" not in piece:
                        assert piece not in text, f"the {provider} secret's {key} was printed"


def load_handler(name: str) -> ModuleType:
    """functions/<name>/app.py imported as sam would, once per test session."""
    return load_function(name)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def meta_post(body: bytes, signature: str | None = "valid", **headers: str) -> dict[str, Any]:
    all_headers = {"content-type": "application/json", **headers}
    if signature == "valid":
        all_headers.update(payloads.meta_headers(META, body))
    elif signature is not None:
        all_headers[payloads.META_SIGNATURE] = signature
    return http_event("POST", "/meta/webhook", body, all_headers)


def vonage_post(path: str, body: bytes, authorization: str | None = "valid", **claims: Any) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if authorization == "valid":
        headers.update(payloads.vonage_headers(VONAGE, body, **claims))
    elif authorization is not None:
        headers["authorization"] = authorization
    return http_event("POST", path, body, headers)


def meta_message(
    mid: str,
    text: str = "hello",
    sender: str = "3998527223577371",
    ts: int = 1_700_000_000_000,
    page_id: str = PAGE_ID,
    **message: Any,
) -> dict[str, Any]:
    return payloads.meta_message(sender, page_id, ts, message={"mid": mid, "text": text, **message})


def meta_body(*events: dict[str, Any], page_id: str = PAGE_ID, standby: bool = False) -> dict[str, Any]:
    return payloads.meta_page(
        *events, page_id=page_id, time_ms=1_700_000_000_000, key="standby" if standby else "messaging"
    )


def vonage_inbound_v1(
    message_uuid: str, text: str = "hello", user: str = "3998527223577371", page_id: str = PAGE_ID
) -> dict[str, Any]:
    return payloads.vonage_inbound(
        message_uuid, page_id=page_id, user=user, text=text, timestamp="2025-02-03T12:14:25Z"
    )


def inbound_event(
    event_id: str,
    user: str,
    *,
    text: str = "hello",
    ts: int = 1_700_000_000_000,
    provider: str = "meta",
    page_id: str = "page",
) -> Event:
    return Event(
        provider=Provider(provider),
        event_id=event_id,
        kind=Kind.MESSAGE,
        page_id=page_id,
        user_id=user,
        timestamp_ms=ts,
        text=text,
    )


def stream_record(event: Event, seq: int, *, name: str = "INSERT", **overrides: Any) -> dict[str, Any]:
    """The stream record (as Lambda delivers it) of storing `event`; `overrides` replace item attributes."""
    image = event_item(event, now_s=event.timestamp_ms // 1000, retention_s=86400)
    image.update(to_item(overrides))
    return payloads.stream_record(image, event_id=f"e{seq}", sequence=seq, name=name)


NOW_MS = 1_800_000_000_000


def inbound_record(
    seq: int,
    user: str,
    event_id: str | None = None,
    *,
    name: str = "INSERT",
    record_type: str = "inbound",
    ts: int = NOW_MS,
    text: str = "hello",
) -> dict[str, Any]:
    """The stream record of one Meta text message from `user` (INSERT of an inbound item by default)."""
    event = inbound_event(event_id or f"m{seq}", user, text=text, ts=ts)
    return stream_record(event, seq, name=name, record_type=record_type)


LONG_USER = "9" * 5000  # over the partition key's 2,048 bytes on its own
BIG_TEXT_CHARS = 450_000  # the text and its raw copy make an item over 400 KB


def unstorable_batch(tag: str, user: str = "3998527223577371") -> tuple[bytes, dict[str, str]]:
    """A signed-ready Meta body of events DynamoDB cannot take as they are, between two ordinary messages.

    Returns the body and the mid of each case: `ok1`, `ok2` (ordinary), `big` (an item over 400 KB), `long_mid`
    (a sort key over 1,024 bytes), `long_user` (a conversation over 2,048 bytes), `huge_number` (a location
    DynamoDB cannot hold a number of).
    """
    mids = {
        "ok1": f"m.{tag}.ok1",
        "big": f"m.{tag}.big",
        "long_mid": f"m.{tag}." + "x" * 3000,
        "long_user": f"m.{tag}.long-user",
        "huge_number": f"m.{tag}.huge-number",
        "ok2": f"m.{tag}.ok2",
    }
    location = {"type": "location", "payload": {"coordinates": {"lat": 1e300, "long": 2.5}}}
    body = meta_body(
        meta_message(mids["ok1"], "first", sender=user),
        meta_message(mids["big"], "a" * BIG_TEXT_CHARS, sender=user),
        meta_message(mids["long_mid"], "long mid", sender=user),
        meta_message(mids["long_user"], "long user", sender=LONG_USER),
        {
            "sender": {"id": user},
            "recipient": {"id": PAGE_ID},
            "timestamp": 1_700_000_000_000,
            "message": {"mid": mids["huge_number"], "attachments": [location]},
        },
        meta_message(mids["ok2"], "second", sender=user),
    )
    return dumps(body), mids


def event_ref(sk: str) -> str:
    """An event's sort key without its time part ("EVT#<time>#<id>" -> "EVT#<id>"): how tests name events.
    Any other sort key is returned as it is."""
    head, _, rest = sk.partition("#")
    time_part, _, event_id = rest.partition("#")
    return f"EVT#{event_id}" if head == "EVT" and time_part.isdigit() and event_id else sk
