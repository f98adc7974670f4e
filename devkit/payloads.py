"""Provider payloads as Meta, Vonage and the events table's stream deliver them, signed by the production
signers: a Meta webhook body and its `X-Hub-Signature-256` header, a Vonage callback body and its Bearer JWT,
and a DynamoDB stream record around a stored item.

One builder for the tests, the local chat and sandbox callbacks, scripts/make_events.py, bench/ and
tools/smoke.py (an ops tool: so this module never imports the local stack).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from devkit.lambda_code import add_layers_to_path

add_layers_to_path()
from messenger.providers.meta.signature import sign  # noqa: E402 - needs the layer on sys.path
from messenger.providers.vonage.signature import sign_callback  # noqa: E402
from messenger.storage import stream_keys  # noqa: E402

META_SIGNATURE = "x-hub-signature-256"


def now_ms() -> int:
    return int(time.time() * 1000)


def vonage_time(epoch_s: float | None = None) -> str:
    """A Vonage callback timestamp (ISO 8601, UTC, whole seconds): now unless `epoch_s` is given."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def encode(payload: Any, *, compact: bool = False) -> bytes:
    """The JSON bytes of `payload`: json.dumps' default spacing, or compact (`,` and `:`) as Meta sends."""
    return json.dumps(payload, separators=(",", ":") if compact else None).encode()


def meta_message(sender: str, recipient: str, timestamp: int, **event: Any) -> dict[str, Any]:
    """One messaging (or standby) event: `event` is its `message`, `delivery`, `read`, `postback`, ..."""
    return {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": timestamp, **event}


def meta_page(
    *events: dict[str, Any], page_id: str, time_ms: int | None = None, key: str = "messaging"
) -> dict[str, Any]:
    """A Meta webhook body of one page entry holding `events` (entry time: now unless given)."""
    return {
        "object": "page",
        "entry": [{"id": page_id, "time": now_ms() if time_ms is None else time_ms, key: list(events)}],
    }


def meta_headers(meta: Mapping[str, Any], body: bytes) -> dict[str, str]:
    """The signature header Meta sends with `body`; `meta` is the Meta secret (its `app_secret`)."""
    return {META_SIGNATURE: sign(meta["app_secret"], body)}


def signed_meta(payload: Any, meta: Mapping[str, Any], *, compact: bool = False) -> tuple[bytes, dict[str, str]]:
    """`payload` encoded, and its signature header."""
    body = encode(payload, compact=compact)
    return body, meta_headers(meta, body)


def vonage_headers(vonage: Mapping[str, Any], body: bytes, **claims: Any) -> dict[str, str]:
    """The Bearer JWT Vonage sends with `body` (`claims`: issued_at, jti, application_id, ... of sign_callback)."""
    return {"authorization": sign_callback(vonage["signature_secret"], body, vonage["api_key"], **claims)}


def signed_vonage(
    payload: Any, vonage: Mapping[str, Any], *, compact: bool = False, **claims: Any
) -> tuple[bytes, dict[str, str]]:
    """`payload` encoded, and its authorization header."""
    body = encode(payload, compact=compact)
    return body, vonage_headers(vonage, body, **claims)


def vonage_inbound(
    message_uuid: str, *, page_id: str, user: str, text: str, timestamp: str | None = None
) -> dict[str, Any]:
    """A Vonage Messages v1 inbound text on the messenger channel (sent now unless `timestamp` is given)."""
    return {
        "channel": "messenger",
        "message_uuid": message_uuid,
        "to": page_id,
        "from": user,
        "timestamp": timestamp or vonage_time(),
        "message_type": "text",
        "text": text,
    }


def stream_record(
    item: dict[str, Any],
    *,
    event_id: str,
    sequence: int,
    name: str = "INSERT",
    region: str | None = None,
    stream_arn: str | None = None,
    created_s: float | None = None,
) -> dict[str, Any]:
    """The record of a Lambda DynamoDB stream event that stored `item` (a DynamoDB-typed item).

    Without `stream_arn` the short form the handlers read; with it (and `region`, `created_s`) every field
    Lambda delivers, in its order (see devkit/streams.py `lambda_record`).
    """
    change = {"Keys": stream_keys(item), "NewImage": item, "SequenceNumber": f"{sequence:021d}"}
    if stream_arn is None:
        return {"eventID": event_id, "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": change}
    return {
        "eventID": event_id,
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": {
            "ApproximateCreationDateTime": created_s,
            **change,
            "SizeBytes": len(json.dumps(item, separators=(",", ":"))),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": stream_arn,
    }
