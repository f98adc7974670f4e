"""Test helpers: load the handlers as sam would, sign bodies with the production signers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from local.apigw import http_event
from local.services import sandbox_secrets
from messenger.models import Event, Kind, Provider
from messenger.providers.meta.signature import sign as meta_sign
from messenger.providers.vonage.signature import sign_callback
from messenger.storage import event_item, stream_keys, to_item

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
SECRETS = sandbox_secrets()
META = SECRETS["meta"]
VONAGE = SECRETS["vonage"]
PAGE_ID = next(iter(META["page_tokens"]))


def load_handler(name: str) -> ModuleType:
    """Import functions/<name>/app.py under a unique module name (both functions call theirs app.py)."""
    module_name = f"{name}_app"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "functions" / name / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def meta_post(body: bytes, signature: str | None = "valid", **headers: str) -> dict[str, Any]:
    all_headers = {"content-type": "application/json", **headers}
    if signature == "valid":
        all_headers["x-hub-signature-256"] = meta_sign(META["app_secret"], body)
    elif signature is not None:
        all_headers["x-hub-signature-256"] = signature
    return http_event("POST", "/meta/webhook", body, all_headers)


def vonage_post(path: str, body: bytes, authorization: str | None = "valid", **claims: Any) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if authorization == "valid":
        headers["authorization"] = sign_callback(VONAGE["signature_secret"], body, VONAGE["api_key"], **claims)
    elif authorization is not None:
        headers["authorization"] = authorization
    return http_event("POST", path, body, headers)


def meta_message(mid: str, text: str = "hello", sender: str = "3998527223577371", ts: int = 1_700_000_000_000,
                 page_id: str = PAGE_ID, **message: Any) -> dict[str, Any]:
    return {"sender": {"id": sender}, "recipient": {"id": page_id}, "timestamp": ts,
            "message": {"mid": mid, "text": text, **message}}


def meta_body(*events: dict[str, Any], page_id: str = PAGE_ID, standby: bool = False) -> dict[str, Any]:
    key = "standby" if standby else "messaging"
    return {"object": "page", "entry": [{"id": page_id, "time": 1_700_000_000_000, key: list(events)}]}


def vonage_inbound_v1(message_uuid: str, text: str = "hello", user: str = "3998527223577371",
                      page_id: str = PAGE_ID) -> dict[str, Any]:
    return {"channel": "messenger", "message_uuid": message_uuid, "to": page_id, "from": user,
            "timestamp": "2025-02-03T12:14:25Z", "message_type": "text", "text": text}


def inbound_event(event_id: str, user: str, *, text: str = "hello", ts: int = 1_700_000_000_000,
                  provider: str = "meta", page_id: str = "page") -> Event:
    return Event(provider=Provider(provider), event_id=event_id, kind=Kind.MESSAGE, page_id=page_id, user_id=user,
                 timestamp_ms=ts, text=text)


def stream_record(event: Event, seq: int, *, name: str = "INSERT", **overrides: Any) -> dict[str, Any]:
    """The stream record (as Lambda delivers it) of storing `event`; `overrides` replace item attributes."""
    image = event_item(event, now_s=event.timestamp_ms // 1000, retention_s=86400)
    image.update(to_item(overrides))
    return {"eventID": f"e{seq}", "eventName": name, "eventSource": "aws:dynamodb",
            "dynamodb": {"SequenceNumber": f"{seq:021d}", "NewImage": image, "Keys": stream_keys(image)}}


LONG_USER = "9" * 5000  # over the partition key's 2,048 bytes on its own
BIG_TEXT_CHARS = 450_000  # the text and its raw copy make an item over 400 KB


def unstorable_batch(tag: str, user: str = "3998527223577371") -> tuple[bytes, dict[str, str]]:
    """A signed-ready Meta body of events DynamoDB cannot take as they are, between two ordinary messages.

    Returns the body and the mid of each case: `ok1`, `ok2` (ordinary), `big` (an item over 400 KB), `long_mid`
    (a sort key over 1,024 bytes), `long_user` (a conversation over 2,048 bytes), `huge_number` (a location
    DynamoDB cannot hold a number of).
    """
    mids = {"ok1": f"m.{tag}.ok1", "big": f"m.{tag}.big", "long_mid": f"m.{tag}." + "x" * 3000,
            "long_user": f"m.{tag}.long-user", "huge_number": f"m.{tag}.huge-number", "ok2": f"m.{tag}.ok2"}
    location = {"type": "location", "payload": {"coordinates": {"lat": 1e300, "long": 2.5}}}
    body = meta_body(
        meta_message(mids["ok1"], "first", sender=user),
        meta_message(mids["big"], "a" * BIG_TEXT_CHARS, sender=user),
        meta_message(mids["long_mid"], "long mid", sender=user),
        meta_message(mids["long_user"], "long user", sender=LONG_USER),
        {"sender": {"id": user}, "recipient": {"id": PAGE_ID}, "timestamp": 1_700_000_000_000,
         "message": {"mid": mids["huge_number"], "attachments": [location]}},
        meta_message(mids["ok2"], "second", sender=user),
    )
    return dumps(body), mids
