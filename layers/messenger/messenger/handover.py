"""Pause the bot for a conversation while a person (or another app) has it.

Meta triggers: `take_thread_control` (another app took the thread) and an echo of a message we did not
send (a Page admin replied by hand in the Inbox) pause the conversation for HANDOVER_PAUSE_SECONDS;
`pass_thread_control` to us resumes it. Our own sends carry BOT_METADATA, which Meta returns in the
echo, so they never pause anything. Vonage has no echoes: there the user's request for a person (a
rule of the responder) pauses the conversation the same way (see docs/messenger-coverage.md).
"""

from __future__ import annotations

from messenger.events import Event, Kind, Provider
from messenger.storage import OutboundMessage, Store

BOT_METADATA = "messenger-webhook:bot"


def bot_metadata(inbound_event_id: str) -> str:
    """What our sends carry as Meta `metadata`: the marker, then the id of the message they answer."""
    return f"{BOT_METADATA}:{inbound_event_id}"


def is_ours(metadata: str | None) -> bool:
    return metadata is not None and (metadata == BOT_METADATA or metadata.startswith(BOT_METADATA + ":"))


def answered_event_id(metadata: str | None) -> str | None:
    """The inbound event id an echo of ours answers (None for other echoes or the bare marker)."""
    if metadata is None or not is_ours(metadata) or metadata == BOT_METADATA:
        return None
    return metadata[len(BOT_METADATA) + 1 :] or None


def echoed_outbound(event: Event) -> OutboundMessage | None:
    """The outbound message an echo of our own send shows, or a Vonage status callback of one (it carries
    our `client_ref`, the id of the message it answers); None for any other event. The provider accepted
    it, so it is `sent`; its part of the reply is unknown (neither says)."""
    if event.kind is Kind.ECHO:
        inbound_id = answered_event_id(event.metadata)
    elif event.kind is Kind.STATUS and event.provider is Provider.VONAGE:
        client_ref = event.raw.get("client_ref")
        inbound_id = client_ref if isinstance(client_ref, str) and client_ref else None
    else:
        inbound_id = None
    if inbound_id is None:
        return None
    return OutboundMessage(
        conversation=event.conversation_id,
        provider=event.provider.value,
        message_id=event.mids[0] if event.kind is Kind.STATUS and event.mids else event.event_id,
        page_id=event.page_id,
        user_id=event.user_id,
        in_reply_to=inbound_id,
        part_index=None,
        sent_at_ms=event.timestamp_ms,
        status="sent",
        text=event.text,
    )


def pause_change(event: Event, pause_seconds: int) -> int | None:
    """The `paused_until` (epoch ms) this event sets, 0 to resume, None when it changes nothing."""
    if event.kind is Kind.ECHO and not is_ours(event.metadata):
        return event.timestamp_ms + pause_seconds * 1000
    if event.kind is Kind.HANDOVER:
        if event.message_type == "take_thread_control":
            return event.timestamp_ms + pause_seconds * 1000
        if event.message_type == "pass_thread_control":
            return 0
    return None


def record(store: Store, event: Event, pause_seconds: int) -> bool:
    """Apply the event's pause/resume to the conversation state; older events never override newer ones."""
    paused_until = pause_change(event, pause_seconds)
    if paused_until is None:
        return False
    return store.set_pause(event.conversation_id, paused_until, event.timestamp_ms, event.kind.value)
