"""The reply side's one decode path: a stream record, or a stored item the conversation's turn reads, to the
`InboundMessage` it answers (None for anything it does not answer). Each record is decoded once, then passed
along."""

from __future__ import annotations

from typing import Any, NamedTuple

from messenger.events import Kind, RecordType, answerable
from messenger.messages import InboundMessage
from messenger.observability import logger
from messenger.storage.codec import EVENT, from_item, record_conversation


class ReplyRecord(NamedTuple):
    """One stream record. `inbound` is None for anything that is not a new message we answer."""

    raw: dict[str, Any]
    inbound: InboundMessage | None

    @property
    def sequence_number(self) -> str:
        return str(self.raw["dynamodb"]["SequenceNumber"])


def decode(record: dict[str, Any]) -> ReplyRecord:
    return ReplyRecord(record, inbound_from_record(record))


def inbound_from_record(record: dict[str, Any]) -> InboundMessage | None:
    """The message of a stream INSERT of an inbound item; None for anything else (an update, a removal, an
    outbound, status or state item), which is told from the raw image without deserialising it."""
    if record.get("eventName") != "INSERT":
        return None
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    if image.get("record_type", {}).get("S") != RecordType.INBOUND.value:
        return None
    return inbound_from_item(from_item(image))


def inbound_from_item(item: dict[str, Any]) -> InboundMessage | None:
    """A stored (deserialised) inbound event item -> the message we answer. None for any other item, for a
    kind we do not answer, and (logged) for an item without the fields a reply needs."""
    if item.get("record_type") != RecordType.INBOUND.value or not str(item.get("sk", "")).startswith(EVENT):
        return None
    try:
        message = InboundMessage(
            provider=str(item["provider"]),
            event_id=str(item["event_id"]),
            kind=str(item.get("kind", Kind.MESSAGE.value)),
            page_id=str(item["page_id"]),
            user_id=str(item["user_id"]),
            conversation_id=str(item["pk"]),  # the partition key is the conversation
            timestamp_ms=int(item["timestamp_ms"]),
            text=item.get("text"),
            attachments=tuple(a for a in item.get("attachments", []) if isinstance(a, dict)),
            quick_reply_payload=item.get("quick_reply_payload"),
            postback_title=item.get("postback_title"),
            postback_payload=item.get("postback_payload"),
            reply_to_mid=item.get("reply_to_mid"),
            message_type=item.get("message_type"),
            event_key=str(item["sk"]),
        )
    except (KeyError, ValueError, TypeError):
        logger.warning("inbound item without the fields a reply needs", extra={"sk": item.get("sk")})
        return None
    return message if answerable(message.kind) else None


def conversation_key(record: dict[str, Any]) -> str:
    """The group a record is ordered in: its conversation (the partition key), or the record alone."""
    conversation = record_conversation(record)
    return f"c:{conversation}" if conversation else f"r:{record.get('eventID')}:{id(record)}"
