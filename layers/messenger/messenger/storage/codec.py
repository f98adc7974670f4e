"""The table's keys and item codec: the only place that knows how an item is addressed and encoded.

Keys (docs/design.md, "Keys"): `pk` is the conversation, `"<provider>#<page_id>#<user_id>"`, so every item
of one person's conversation shares one partition key. `sk` says what the item is:
`EVT#<provider time, 15 digits>#<event_id>` (a stored provider event, in the order the user sent them: the
reply side reads a conversation's pending messages in key order), `MSG#<message_id>` (an outbound message),
`REPLY#<inbound_event_id>` (the reply claim), `STATE` (the conversation's state: handover pause, the reply
turn and the answered-through cursor, unread outbound messages), `PROFILE` (the cached first name). A
data-deletion request is `pk = DEL#<code>`, `sk = DEL`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal, DecimalException
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from messenger.events import STATUS_RANK, Event, RecordType
from messenger.storage.port import NewClaim, OutboundMessage, Turn, UnreadMessage

EVENT = "EVT#"
MESSAGE = "MSG#"
REPLY = "REPLY#"
STATE = "STATE"
PROFILE = "PROFILE"
DELETION = "DEL"

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()

Key = tuple[str, str]

# DynamoDB's limits (docs/design.md, "Events that cannot be stored as they are"): a write past one is a
# ValidationException, a permanent answer that no retry changes.
MAX_ITEM_BYTES = 400 * 1024
MAX_PK_BYTES = 2048
MAX_SK_BYTES = 1024
# An event item is bounded to this, leaving room for its `omitted` summary.
ITEM_BUDGET_BYTES = MAX_ITEM_BYTES - 4096
_KEY_HEAD_BYTES = 128
_MAX_NUMBER = Decimal("9.9999999999999999999999999999999999999E+125")
_MIN_NUMBER = Decimal("1E-130")


def bounded_key_part(value: str, limit: int) -> str:
    """`value` if it fits `limit` UTF-8 bytes, else its first bytes, `~sha256:` and the hash of the whole.

    The same long id always gives the same key (so dedupe and status updates keep working), and a bounded
    key is returned unchanged (a conversation read back from `pk` addresses the same items).
    """
    raw = value.encode()
    if len(raw) <= limit:
        return value
    head = raw[:_KEY_HEAD_BYTES].decode(errors="ignore")
    return f"{head}~sha256:{hashlib.sha256(raw).hexdigest()}"


def _key(pk: str, sk: str) -> Key:
    return bounded_key_part(pk, MAX_PK_BYTES), bounded_key_part(sk, MAX_SK_BYTES)


_ORDER_DIGITS = 15
_MAX_ORDER = 10**_ORDER_DIGITS - 1
# Every event key sorts between these: `EVT#` then digits (the provider time).
EVENTS_FIRST = EVENT
EVENTS_LAST = f"{EVENT}~"


def event_key(conversation: str, event_id: str, timestamp_ms: int) -> Key:
    """The provider's time first, so a conversation's events sort in the order the user sent them; the id
    breaks ties. A redelivery carries the same time and id, so it addresses the same item (dedupe)."""
    order = min(max(int(timestamp_ms), 0), _MAX_ORDER)
    return _key(conversation, f"{EVENT}{order:0{_ORDER_DIGITS}d}#{event_id}")


def message_key(conversation: str, message_id: str) -> Key:
    return _key(conversation, f"{MESSAGE}{message_id}")


def reply_key(conversation: str, inbound_event_id: str) -> Key:
    return _key(conversation, f"{REPLY}{inbound_event_id}")


def state_key(conversation: str) -> Key:
    return _key(conversation, STATE)


def profile_key(conversation: str) -> Key:
    return _key(conversation, PROFILE)


def deletion_key(code: str) -> Key:
    return _key(f"{DELETION}#{code}", DELETION)


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
    attribute: dict[str, Any] = _SERIALIZER.serialize(_storable(value))
    return attribute


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values -> a DynamoDB item; None, "" and [] are left out (absent, not empty)."""
    return {k: to_attribute(v) for k, v in values.items() if v is not None and v != [] and v != ""}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}


# -- the stored form of a provider event ---------------------------------------------------------------


def event_values(event: Event, *, now_s: int, retention_s: int) -> dict[str, Any]:
    pk, sk = event_key(event.conversation_id, event.event_id, event.timestamp_ms if event.provider_time else 0)
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
        "attachments": [{k: v for k, v in a._asdict().items() if v is not None} for a in event.attachments],
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
    """The item (and so the stream's NewImage) of a provider event, bounded to what DynamoDB accepts."""
    return next(event_forms(event, now_s=now_s, retention_s=retention_s))


def event_forms(event: Event, *, now_s: int, retention_s: int) -> Iterator[dict[str, Any]]:
    """The forms to try storing an event in, best first: the event bounded to DynamoDB's limits (keys hashed
    when too long, the largest fields replaced by their size and SHA-256 until the item fits), then a safe
    form holding only its string attributes, for when DynamoDB still rejects the first (a ValidationException).
    """
    item: dict[str, Any] = {}
    omitted: dict[str, Any] = {}
    for name, value in event_values(event, now_s=now_s, retention_s=retention_s).items():
        if value is None or value == [] or value == "":
            continue
        try:
            item[name] = to_attribute(value)
        except (DecimalException, TypeError, ValueError):  # a number DynamoDB cannot hold: not storable as is
            omitted[name] = {"reason": "not_storable"}
    bounded = _bounded(item, dict(omitted))
    yield bounded
    safe = {k: v for k, v in item.items() if k in _PINNED or "S" in v}
    yield _bounded(safe, {**omitted, **{k: {"reason": "rejected"} for k in item if k not in safe}})


_PINNED = frozenset({"pk", "sk", "record_type", "provider", "kind", "received_at", "expires_at"})


def _bounded(item: dict[str, Any], omitted: dict[str, Any]) -> dict[str, Any]:
    """Replace the largest attributes by their size and SHA-256 until the item fits ITEM_BUDGET_BYTES."""
    item = dict(item)
    size = item_size(item)
    # Ordering by size walks every attribute again: only an item over the budget (rare) pays for it.
    by_size = sorted(item, key=lambda n: attribute_size(item[n]), reverse=True) if size > ITEM_BUDGET_BYTES else []
    for name in by_size:
        if size <= ITEM_BUDGET_BYTES:
            break
        if name in _PINNED:
            continue
        value = item.pop(name)
        size -= len(name.encode()) + attribute_size(value)
        omitted[name] = {"bytes": attribute_size(value), "sha256": _digest(value)}
    if omitted:
        item["omitted"] = to_attribute(omitted)
    return item


def _digest(attribute: dict[str, Any]) -> str:
    """SHA-256 of a field's content: a string's UTF-8 bytes, anything else as canonical JSON."""
    if "S" in attribute:
        data = attribute["S"].encode()
    else:
        data = json.dumps(from_item({"v": attribute})["v"], sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(data).hexdigest()


def attribute_size(attribute: dict[str, Any]) -> int:
    """An attribute value's size as DynamoDB counts it (numbers and containers rounded up, never under)."""
    ((kind, value),) = attribute.items()
    if kind == "S":
        return len(value.encode())
    if kind == "B":
        return len(value)
    if kind == "N":
        return len(value) // 2 + 2
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in value)
    if kind == "NS":
        return sum(len(v) // 2 + 2 for v in value)
    if kind == "BS":
        return sum(len(v) for v in value)
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in value)
    return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in value.items())  # M


def item_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it against its 400 KB limit (an upper bound)."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def check_item(item: dict[str, Any]) -> str | None:
    """Why DynamoDB would refuse this item (a ValidationException), or None: the rules MemoryStore applies."""
    if len(item["pk"]["S"].encode()) > MAX_PK_BYTES or len(item["sk"]["S"].encode()) > MAX_SK_BYTES:
        return "key too long"
    if item_size(item) > MAX_ITEM_BYTES:
        return "item too large"
    if any(_bad_number(value) for value in item.values()):
        return "number out of range"
    return None


def _bad_number(attribute: dict[str, Any]) -> bool:
    ((kind, value),) = attribute.items()
    if kind == "N":
        number = abs(Decimal(value))
        return number != 0 and not _MIN_NUMBER <= number <= _MAX_NUMBER
    if kind == "NS":
        return any(_bad_number({"N": v}) for v in value)
    if kind == "L":
        return any(_bad_number(v) for v in value)
    if kind == "M":
        return any(_bad_number(v) for v in value.values())
    return False


def stream_keys(image: dict[str, Any]) -> dict[str, Any]:
    """A stream record's `Keys` for an item image, as DynamoDB puts them in the record."""
    return {"pk": image["pk"], "sk": image["sk"]}


# -- stream records ----------------------------------------------------------------------------------


def record_conversation(record: dict[str, Any]) -> str | None:
    """The conversation (partition key) of a stream record, from its Keys."""
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    pk = (keys.get("pk") or {}).get("S")
    return pk if pk and not pk.startswith(f"{DELETION}#") else None


OUTBOUND_TEXT_LIMIT = 2000


def claim_values(claim: NewClaim, expires_at: int) -> dict[str, Any]:
    """The attributes of a new reply claim (both stores write exactly these)."""
    return {
        "record_type": RecordType.REPLY.value,
        "provider": claim.provider,
        "inbound_event_id": claim.inbound_event_id,
        "state": "claimed",
        "claim_token": claim.token,
        "attempts": 1,
        "parts_done": 0,
        "claimed_at_ms": claim.now_ms,
        "updated_at_ms": claim.now_ms,
        "expires_at": expires_at,
    }


def outbound_values(message: OutboundMessage) -> dict[str, Any]:
    """What recording an outbound message sets (a status callback may have created the item first)."""
    return {
        "record_type": RecordType.OUTBOUND.value,
        "provider": message.provider,
        "message_id": message.message_id,
        "page_id": message.page_id,
        "user_id": message.user_id,
        "in_reply_to": message.in_reply_to,
        "part_index": message.part_index,
        "sent_at_ms": message.sent_at_ms,
        "text": message.text[:OUTBOUND_TEXT_LIMIT] if message.text else None,
    }


def outbound_defaults(message: OutboundMessage, expires_at: int) -> dict[str, Any]:
    """What it sets only where absent: a status never moves back, the first TTL stays."""
    return {
        "status": message.status,
        "status_rank": STATUS_RANK[message.status],
        "status_at_ms": message.sent_at_ms,
        "expires_at": expires_at,
    }


# -- the conversation state: reply turn, cursor, unread outbound messages --------------------------------

TURN_TOKEN = "turn_token"
TURN_UNTIL = "turn_until_ms"
ANSWERED_THROUGH = "answered_through"
UNREAD = "unread"
# Unread outbound messages kept for read receipts: the newest 20 (a burst of replies). The list rides on the
# item every turn writes twice, and a write costs a unit per KB of the item: for a user who reads, the list
# holds the last reply or two (1 KB); for one who never reads, 20 Meta message ids make it about 2.5 KB.
UNREAD_LIMIT = 20
# Claim states an echo or a status callback with our reference settles as sent (reply/ledger.py, ClaimState).
CONFIRMABLE = ("unconfirmed", "ambiguous")


def watermark_attribute(status: str) -> str:
    return f"{status}_watermark_ms"


def turn_from_state(values: dict[str, Any]) -> Turn:
    return Turn(
        token=str(values.get(TURN_TOKEN, "")),
        answered_through=str(values.get(ANSWERED_THROUGH, "")),
        paused_until_ms=int(values.get("paused_until_ms", 0)),
        unread=unread_messages(values),
        read_watermark_ms=int(values.get(watermark_attribute("read"), 0)),
    )


def unread_messages(values: dict[str, Any]) -> list[UnreadMessage]:
    found = []
    for entry in values.get(UNREAD, []):
        if isinstance(entry, list) and len(entry) == 2:
            found.append(UnreadMessage(str(entry[0]), int(entry[1])))
    return found


WATERMARK_STATUSES = ("delivered", "read")


def watermarks(values: dict[str, Any]) -> dict[str, int]:
    """The status watermarks a conversation state holds, by status."""
    return {s: int(values[watermark_attribute(s)]) for s in WATERMARK_STATUSES if watermark_attribute(s) in values}


def unread_between(values: dict[str, Any], status: str, watermark_ms: int) -> list[str]:
    """Ids of the unread messages a `status` watermark newly covers: sent after the last one, up to this."""
    last = int(values.get(watermark_attribute(status), -1))
    return [m.message_id for m in unread_messages(values) if last < m.sent_at_ms <= watermark_ms]


def still_unread(unread: list[UnreadMessage], read_watermark_ms: int) -> list[UnreadMessage]:
    """What stays on the list: not covered by the read watermark, the newest UNREAD_LIMIT."""
    kept = [m for m in unread if m.sent_at_ms > read_watermark_ms]
    return kept[-UNREAD_LIMIT:]
