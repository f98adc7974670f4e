"""What the reply side works with: the inbound message (from the stream) and the messages we answer with.

Provider-neutral: the Meta and Vonage senders turn `OutgoingMessage`s into their own request bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from messenger.models import Kind, RecordType

SENDER_ACTIONS = frozenset({"typing_on", "typing_off", "mark_seen"})
ATTACHMENT_TYPES = frozenset({"image", "audio", "video", "file"})
_SPACE = re.compile(r"\s")


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A stored inbound event (record_type "inbound") as the responder and the senders see it."""

    provider: str
    event_id: str
    kind: str
    page_id: str
    user_id: str
    conversation_id: str
    timestamp_ms: int
    text: str | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    quick_reply_payload: str | None = None
    postback_title: str | None = None
    postback_payload: str | None = None
    reply_to_mid: str | None = None
    message_type: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> InboundMessage:
        """A plain (already deserialised) item -> message. KeyError/ValueError if it is not an inbound item."""
        if item.get("record_type") != RecordType.INBOUND.value:
            raise ValueError("not an inbound item")
        return cls(
            provider=str(item["provider"]),
            event_id=str(item["event_id"]),
            kind=str(item.get("kind", Kind.MESSAGE.value)),
            page_id=str(item["page_id"]),
            user_id=str(item["user_id"]),
            conversation_id=str(item["conversation_id"]),
            timestamp_ms=int(item["timestamp_ms"]),
            text=item.get("text"),
            attachments=tuple(a for a in item.get("attachments", []) if isinstance(a, dict)),
            quick_reply_payload=item.get("quick_reply_payload"),
            postback_title=item.get("postback_title"),
            postback_payload=item.get("postback_payload"),
            reply_to_mid=item.get("reply_to_mid"),
            message_type=item.get("message_type"),
        )

    @property
    def attachment_types(self) -> list[str]:
        return [str(a.get("type", "")) for a in self.attachments]

    @property
    def has_sticker(self) -> bool:
        return any(a.get("type") == "sticker" or a.get("sticker_id") for a in self.attachments)


@dataclass(frozen=True, slots=True)
class QuickReply:
    title: str
    payload: str


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One reply message. `sender_action` goes alone (Meta refuses it next to a message)."""

    text: str | None = None
    quick_replies: tuple[QuickReply, ...] = field(default_factory=tuple)
    attachment_url: str | None = None
    attachment_type: str | None = None
    sender_action: str | None = None

    def __post_init__(self) -> None:
        if self.sender_action is not None:
            if self.sender_action not in SENDER_ACTIONS:
                raise ValueError(f"unknown sender_action {self.sender_action!r}")
            if self.text or self.attachment_url or self.quick_replies:
                raise ValueError("sender_action is sent alone, without text, attachment or quick replies")
            return
        if self.attachment_url and self.attachment_type not in ATTACHMENT_TYPES:
            raise ValueError(f"attachment_type must be one of {sorted(ATTACHMENT_TYPES)}")
        if not self.text and not self.attachment_url:
            raise ValueError("a message needs text, an attachment or a sender_action")


def split_text(text: str, limit: int) -> list[str]:
    """Split `text` into chunks of at most `limit` characters, at whitespace where possible."""
    if limit < 1:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = max((m.start() for m in _SPACE.finditer(window)), default=-1)
        if cut < limit // 2:  # no useful whitespace: cut hard rather than send tiny pieces
            cut = limit
        chunk = rest[:cut].rstrip()
        if chunk:
            chunks.append(chunk)
        rest = rest[cut:].lstrip()
    if rest or not chunks:
        chunks.append(rest)
    return chunks
