"""What the webhook stores, on the in-memory store: each event once, statuses and pauses applied first."""

from __future__ import annotations

import pytest

from messenger.errors import StorageError
from messenger.handover import bot_metadata
from messenger.ingest import ingest
from messenger.messages import InboundMessage
from messenger.models import Event, Kind, Provider
from messenger.outbox import ClaimState, ReplyLedger
from messenger.storage import OutboundMessage
from messenger.storage.memory import MemoryStore

CONVERSATION = "meta#page#user"


def event(event_id: str, kind: Kind = Kind.MESSAGE, ts: int = 1_000, **fields: object) -> Event:
    return Event(provider=Provider.META, event_id=event_id, kind=kind, page_id="page", user_id="user",
                 timestamp_ms=ts, **fields)  # type: ignore[arg-type]


def sent(store: MemoryStore, message_id: str, at_ms: int) -> None:
    store.record_outbound(OutboundMessage(CONVERSATION, "meta", message_id, "page", "user", "m_in", 0, at_ms, "sent"))


def test_each_event_is_stored_once():
    store = MemoryStore()
    first = ingest(store, [event("m1"), event("m2")])
    again = ingest(store, [event("m1"), event("m2"), event("m3")])
    assert (first.stored, first.duplicates) == (2, 0) and (again.stored, again.duplicates) == (1, 2)
    assert sorted(sk for _, sk in store.items) == ["EVT#m1", "EVT#m2", "EVT#m3"]


def test_a_transient_failure_raises_and_the_redelivery_stores_what_is_missing_once():
    class FailingThirdOnce(MemoryStore):
        failed = False

        def store_event(self, event: Event, now_s: int | None = None) -> bool:
            if event.event_id == "m3" and not self.failed:
                self.failed = True
                raise StorageError("throttled")
            return super().store_event(event, now_s)

    store = FailingThirdOnce()
    batch = [event("m1"), event("m2"), event("m3"), event("m4")]
    # When one put of the batch fails transiently, the batch raises (the handler answers 5xx)
    with pytest.raises(StorageError):
        ingest(store, batch)
    assert "EVT#m3" not in {sk for _, sk in store.items}
    # Then the provider's redelivery stores the missing event and recognises the others
    again = ingest(store, batch)
    assert (again.stored, again.duplicates) == (1, 3)
    assert sorted(sk for _, sk in store.items) == ["EVT#m1", "EVT#m2", "EVT#m3", "EVT#m4"]


def test_delivery_mids_and_read_watermarks_move_outbound_statuses():
    store = MemoryStore()
    for mid, at in (("o1", 1_000), ("o2", 2_000), ("o3", 3_000)):
        sent(store, mid, at)
    result = ingest(store, [event("d1", Kind.DELIVERY, mids=["o1"]), event("r1", Kind.READ, watermark_ms=2_000)])
    assert result.statuses_applied == 3
    assert [store.message(CONVERSATION, m)["status"] for m in ("o1", "o2", "o3")] == ["read", "read", "sent"]


def test_a_vonage_status_creates_or_moves_the_outbound_message():
    store = MemoryStore()
    status = Event(provider=Provider.VONAGE, event_id="u1#status#delivered", kind=Kind.STATUS, page_id="page",
                   user_id="user", timestamp_ms=5, status="delivered", mids=["u1"], from_page=True)
    assert ingest(store, [status]).statuses_applied == 1
    assert store.message("vonage#page#user", "u1")["status"] == "delivered"


def test_a_persons_echo_pauses_and_our_echo_settles_an_ambiguous_reply():
    store = MemoryStore()
    ledger = ReplyLedger(store)
    inbound = InboundMessage("meta", "m.in", "message", "page", "user", CONVERSATION, 1, text="hi")
    ledger.finish(ledger.claim(inbound), ClaimState.AMBIGUOUS)
    ingest(store, [event("echo1", Kind.ECHO, ts=5_000, from_page=True, metadata=bot_metadata("m.in"))],
           pause_seconds=60)
    assert store.reply_state(CONVERSATION, "m.in").state == "sent" and store.paused_until(CONVERSATION) == 0
    ingest(store, [event("echo2", Kind.ECHO, ts=6_000, from_page=True)], pause_seconds=60)
    assert store.paused_until(CONVERSATION) == 66_000
