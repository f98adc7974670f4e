"""Stream records of the events table as the reply side sees them: each decoded once, then passed along."""

from __future__ import annotations

from typing import Any, NamedTuple

from messenger.events import answerable
from messenger.messages import InboundMessage
from messenger.observability import logger
from messenger.storage import new_inbound, record_conversation


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
    """The inbound message of an INSERT of an answerable inbound item; None for anything else."""
    try:
        item = new_inbound(record)
        if item is None:
            return None
        message = InboundMessage.from_item(item)
    except (KeyError, ValueError, TypeError):
        logger.warning("inbound record without the fields a reply needs", extra={"event_id": record.get("eventID")})
        return None
    return message if answerable(message.kind) else None


def conversation_key(record: dict[str, Any]) -> str:
    """The group a record is ordered in: its conversation (the partition key), or the record alone."""
    conversation = record_conversation(record)
    return f"c:{conversation}" if conversation else f"r:{record.get('eventID')}:{id(record)}"
