"""What the reply side works with: the inbound message (from the stream) and the messages we answer with.

Provider-neutral: the Meta and Vonage senders turn `OutgoingMessage`s into their own request bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SENDER_ACTIONS = frozenset({"typing_on", "typing_off", "mark_seen"})
ATTACHMENT_TYPES = frozenset({"image", "audio", "video", "file"})
NOTIFICATION_TYPES = frozenset({"REGULAR", "SILENT_PUSH", "NO_PUSH"})
TEMPLATE_TYPES = frozenset({"generic", "button"})
MAX_GENERIC_ELEMENTS = 10
MAX_BUTTONS = 3
BUTTON_TYPES = frozenset({"postback", "web_url", "phone_number"})
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
    first_name: str | None = None  # filled in by the optional profile look-up (Meta only)
    event_key: str = ""  # the sort key it is stored under (its place in the conversation's order)

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
class Button:
    """A template button: `postback` (payload), `web_url` (url) or `phone_number` (payload = +number)."""

    type: str
    title: str
    payload: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if self.type not in BUTTON_TYPES:
            raise ValueError(f"button type must be one of {sorted(BUTTON_TYPES)}")
        if not self.title or len(self.title) > 20:
            raise ValueError("a button title must be 1-20 characters")
        if self.type == "web_url" and not (self.url or "").startswith("https://"):
            raise ValueError("a web_url button needs an https url")
        if self.type != "web_url" and not self.payload:
            raise ValueError(f"a {self.type} button needs a payload")


@dataclass(frozen=True, slots=True)
class Element:
    """One card of a generic template."""

    title: str
    subtitle: str | None = None
    image_url: str | None = None
    buttons: tuple[Button, ...] = ()

    def __post_init__(self) -> None:
        if not self.title or len(self.title) > 80:
            raise ValueError("an element title must be 1-80 characters")
        if len(self.buttons) > MAX_BUTTONS:
            raise ValueError(f"an element has at most {MAX_BUTTONS} buttons")


@dataclass(frozen=True, slots=True)
class Template:
    """A Meta structured message: `generic` (cards) or `button` (text + up to 3 buttons)."""

    type: str
    text: str | None = None
    elements: tuple[Element, ...] = ()
    buttons: tuple[Button, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TEMPLATE_TYPES:
            raise ValueError(f"template type must be one of {sorted(TEMPLATE_TYPES)}")
        if self.type == "generic" and not 1 <= len(self.elements) <= MAX_GENERIC_ELEMENTS:
            raise ValueError(f"a generic template needs 1-{MAX_GENERIC_ELEMENTS} elements")
        if self.type == "button" and (not self.text or not 1 <= len(self.buttons) <= MAX_BUTTONS):
            raise ValueError(f"a button template needs text and 1-{MAX_BUTTONS} buttons")

    def as_text(self) -> str:
        """A plain-text rendering for providers without templates (Vonage)."""
        if self.type == "button":
            return "\n".join([self.text or "", *(f"- {b.title}" for b in self.buttons)])
        return "\n".join(f"- {e.title}" + (f": {e.subtitle}" if e.subtitle else "") for e in self.elements)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One reply message. `sender_action` goes alone (Meta refuses it next to a message).

    `handover` asks the pipeline to pause the bot for the conversation once this reply is sent (a person
    takes over). `reply_to_mid`, `notification_type` and templates are Meta features; the Vonage sender
    renders a template as text and leaves the others out.
    """

    text: str | None = None
    quick_replies: tuple[QuickReply, ...] = field(default_factory=tuple)
    attachment_url: str | None = None
    attachment_type: str | None = None
    sender_action: str | None = None
    template: Template | None = None
    reply_to_mid: str | None = None
    notification_type: str | None = None
    handover: bool = False

    def __post_init__(self) -> None:
        if self.sender_action is not None:
            if self.sender_action not in SENDER_ACTIONS:
                raise ValueError(f"unknown sender_action {self.sender_action!r}")
            if self.text or self.attachment_url or self.quick_replies or self.template:
                raise ValueError("sender_action is sent alone, without text, attachment or quick replies")
            return
        if self.attachment_url and self.attachment_type not in ATTACHMENT_TYPES:
            raise ValueError(f"attachment_type must be one of {sorted(ATTACHMENT_TYPES)}")
        if self.attachment_url and not self.attachment_url.startswith(("https://", "http://")):
            raise ValueError("attachment_url must be an http(s) URL")
        if self.template is not None and (self.text or self.attachment_url):
            raise ValueError("a template is sent on its own, without text or an attachment")
        if not self.text and not self.attachment_url and self.template is None:
            raise ValueError("a message needs text, an attachment, a template or a sender_action")
        if self.notification_type is not None and self.notification_type not in NOTIFICATION_TYPES:
            raise ValueError(f"notification_type must be one of {sorted(NOTIFICATION_TYPES)}")


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
