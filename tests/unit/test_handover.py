"""Handover pause rules and their conversation state, on the in-memory store."""

from __future__ import annotations

from devkit.memory_store import MemoryStore
from messenger import handover
from messenger.events import Event, Kind, Provider


def event(kind: Kind, ts: int, *, message_type: str | None = None, metadata: str | None = None) -> Event:
    return Event(
        provider=Provider.META,
        event_id=f"e{ts}",
        kind=kind,
        page_id="page",
        user_id="user",
        timestamp_ms=ts,
        message_type=message_type,
        metadata=metadata,
        from_page=kind is Kind.ECHO,
    )


def test_a_persons_echo_and_take_thread_control_pause_pass_resumes():
    assert handover.pause_change(event(Kind.ECHO, 1_000), 60) == 61_000
    assert handover.pause_change(event(Kind.HANDOVER, 1_000, message_type="take_thread_control"), 60) == 61_000
    assert handover.pause_change(event(Kind.HANDOVER, 1_000, message_type="pass_thread_control"), 60) == 0
    assert handover.pause_change(event(Kind.ECHO, 1_000, metadata=handover.bot_metadata("m1")), 60) is None
    assert handover.pause_change(event(Kind.MESSAGE, 1_000), 60) is None


def test_an_older_change_never_overrides_a_newer_one():
    store = MemoryStore()
    assert handover.record(store, event(Kind.ECHO, 1_000), 60)
    assert store.paused_until("meta#page#user") == 61_000
    assert handover.record(store, event(Kind.HANDOVER, 3_000, message_type="pass_thread_control"), 60)
    assert not handover.record(store, event(Kind.HANDOVER, 2_000, message_type="take_thread_control"), 60)
    assert store.paused_until("meta#page#user") == 0
    assert not handover.record(store, event(Kind.MESSAGE, 4_000), 60)


def test_our_metadata_names_the_answered_message():
    assert handover.answered_event_id(handover.bot_metadata("m.in.1")) == "m.in.1"
    assert handover.answered_event_id(handover.BOT_METADATA) is None
    assert handover.answered_event_id("someone else") is None
