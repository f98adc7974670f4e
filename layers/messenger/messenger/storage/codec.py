"""The table's keys and item codec: the only place that knows how an item is addressed and encoded.

Keys (docs/design.md, "Keys"): `pk` is the conversation, `"<provider>#<page_id>#<user_id>"`, so every item
of one person's conversation shares one partition key and the stream keeps them in one shard. `sk` says
what the item is: `EVT#<event_id>` (a stored provider event), `MSG#<message_id>` (an outbound message),
`REPLY#<inbound_event_id>` (the reply claim), `STATE` (the handover pause), `PROFILE` (the cached first
name). A data-deletion request is `pk = DEL#<code>`, `sk = DEL`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from messenger.models import Event, RecordType

EVENT = "EVT#"
MESSAGE = "MSG#"
REPLY = "REPLY#"
STATE = "STATE"
PROFILE = "PROFILE"
DELETION = "DEL"

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

Key = tuple[str, str]


def event_key(conversation: str, event_id: str) -> Key:
    return conversation, f"{EVENT}{event_id}"


def message_key(conversation: str, message_id: str) -> Key:
    return conversation, f"{MESSAGE}{message_id}"


def reply_key(conversation: str, inbound_event_id: str) -> Key:
    return conversation, f"{REPLY}{inbound_event_id}"


def state_key(conversation: str) -> Key:
    return conversation, STATE


def profile_key(conversation: str) -> Key:
    return conversation, PROFILE


def deletion_key(code: str) -> Key:
    return f"{DELETION}#{code}", DELETION


def key_attributes(key: Key) -> dict[str, Any]:
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


# -- codec ------------------------------------------------------------------------------------------


def _storable(value: Any) -> Any:
    """Python value -> what TypeSerializer accepts: floats as Decimal, None inside maps dropped."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """Deserialised value -> plain Python: integral numbers as int, others as float, sets as sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    return value


def to_attribute(value: Any) -> dict[str, Any]:
    return _SERIALIZER.serialize(_storable(value))


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values -> a DynamoDB item; None, "" and [] are left out (absent, not empty)."""
    return {k: to_attribute(v) for k, v in values.items() if v is not None and v != [] and v != ""}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


# -- the stored form of a provider event ---------------------------------------------------------------


def event_values(event: Event, *, now_s: int, retention_s: int) -> dict[str, Any]:
    pk, sk = event_key(event.conversation_id, event.event_id)
    return {
        "pk": pk,
        "sk": sk,
        "record_type": event.record_type.value,
        "provider": event.provider.value,
        "kind": event.kind.value,
        "event_id": event.event_id,
        "page_id": event.page_id,
        "user_id": event.user_id,
        "timestamp_ms": event.timestamp_ms,
        "received_at": now_s,
        "expires_at": now_s + retention_s,
        "text": event.text,
        "attachments": [{k: v for k, v in asdict(a).items() if v is not None} for a in event.attachments],
        "quick_reply_payload": event.quick_reply_payload,
        "postback_title": event.postback_title,
        "postback_payload": event.postback_payload,
        "reply_to_mid": event.reply_to_mid,
        "reaction": event.reaction,
        "watermark_ms": event.watermark_ms,
        "mids": event.mids,
        "status": event.status,
        "error": event.error,
        "app_id": event.app_id,
        "metadata": event.metadata,
        "message_type": event.message_type,
        "payload_version": event.payload_version,
        "standby": event.standby or None,
        "raw": json.dumps(event.raw, separators=(",", ":"), ensure_ascii=False),
    }


def event_item(event: Event, *, now_s: int, retention_s: int) -> dict[str, Any]:
    """The item (and so the stream's NewImage) of a provider event."""
    return to_item(event_values(event, now_s=now_s, retention_s=retention_s))


def stream_keys(image: dict[str, Any]) -> dict[str, Any]:
    """A stream record's `Keys` for an item image, as DynamoDB puts them in the record."""
    return {"pk": image["pk"], "sk": image["sk"]}


# -- stream records ----------------------------------------------------------------------------------


def record_conversation(record: dict[str, Any]) -> str | None:
    """The conversation (partition key) of a stream record, from its Keys."""
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    pk = (keys.get("pk") or {}).get("S")
    return pk if pk and not pk.startswith(f"{DELETION}#") else None


def new_inbound(record: dict[str, Any]) -> dict[str, Any] | None:
    """The decoded item of a stream INSERT of an inbound event (with its `conversation_id`); None otherwise."""
    if record.get("eventName") != "INSERT":
        return None
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    if image.get("record_type", {}).get("S") != RecordType.INBOUND.value:
        return None
    if not image.get("sk", {}).get("S", "").startswith(EVENT):
        return None
    item = from_item(image)
    item["conversation_id"] = item["pk"]
    return item
