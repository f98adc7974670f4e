"""The normalised event model both providers parse into, and the record types stored for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class Provider(StrEnum):
    META = "meta"
    VONAGE = "vonage"


class Kind(StrEnum):
    MESSAGE = "message"
    ECHO = "echo"
    POSTBACK = "postback"
    DELIVERY = "delivery"
    READ = "read"
    REACTION = "reaction"
    REFERRAL = "referral"
    OPTIN = "optin"
    HANDOVER = "handover"
    ACCOUNT_LINKING = "account_linking"
    POLICY_ENFORCEMENT = "policy_enforcement"
    STATUS = "status"
    UNKNOWN = "unknown"


class RecordType(StrEnum):
    """`record_type` attribute: the stream filter passes only INBOUND inserts to the reply Lambda."""

    INBOUND = "inbound"  # a user's message or postback we own the thread for: answered once
    ECHO = "echo"  # the Page's own send, seen again: stored, never answered
    EVENT = "event"  # everything else we store and acknowledge
    OUTBOUND = "outbound"  # a message we sent (written by the reply Lambda, updated by statuses)
    REPLY = "reply"  # the reply claim of one inbound message
    STATE = "state"  # a conversation's state (the handover pause)
    PROFILE = "profile"  # a conversation's cached first name
    DELETION = "deletion"  # a data-deletion request and its outcome


# The kinds a user sends that get a reply (when the user, not the Page, sent them and we own the thread).
ANSWERABLE_KINDS = frozenset({Kind.MESSAGE, Kind.POSTBACK})


def answerable(kind: str) -> bool:
    return kind in ANSWERABLE_KINDS


# A status never moves backwards; failures are terminal and outrank delivery.
STATUS_RANK: dict[str, int] = {
    "submitted": 2,
    "sent": 2,
    "delivered": 3,
    "read": 4,
    "rejected": 5,
    "undeliverable": 5,
    "failed": 5,
}


class Attachment(NamedTuple):
    type: str
    url: str | None = None
    title: str | None = None
    sticker_id: str | None = None
    caption: str | None = None
    name: str | None = None
    coordinates: dict[str, float] | None = None


@dataclass(slots=True)
class Event:
    """One provider event, normalised. `raw` keeps the provider's own JSON for what we do not model."""

    provider: Provider
    event_id: str
    kind: Kind
    page_id: str
    user_id: str
    timestamp_ms: int
    # False when the provider gave no time and `timestamp_ms` is when we received it: then it cannot order
    # the event's key (a redelivery would get another one), which uses 0 instead (storage/codec.py).
    provider_time: bool = True
    from_page: bool = False
    standby: bool = False
    text: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    quick_reply_payload: str | None = None
    postback_title: str | None = None
    postback_payload: str | None = None
    reply_to_mid: str | None = None
    reaction: str | None = None
    watermark_ms: int | None = None
    mids: list[str] = field(default_factory=list)
    status: str | None = None
    error: dict[str, Any] | None = None
    app_id: str | None = None
    metadata: str | None = None
    payload_version: str | None = None
    message_type: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def record_type(self) -> RecordType:
        if self.kind is Kind.ECHO:
            return RecordType.ECHO
        if answerable(self.kind) and not self.from_page and not self.standby:
            return RecordType.INBOUND
        return RecordType.EVENT

    @property
    def conversation_id(self) -> str:
        return conversation_id(self.provider, self.page_id, self.user_id)


def conversation_id(provider: str, page_id: str, user_id: str) -> str:
    return f"{provider}#{page_id}#{user_id}"
