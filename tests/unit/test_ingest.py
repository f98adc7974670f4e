"""What the webhook stores, on the in-memory store: each event once, statuses and pauses applied first."""

from __future__ import annotations

import hashlib
import random
import time

import pytest

from devkit.memory_store import MemoryStore
from messenger.errors import StorageError, StorageRejectedError
from messenger.events import Event, Kind, Provider
from messenger.handover import bot_metadata
from messenger.inbound.ingest import ingest
from messenger.messages import InboundMessage
from messenger.observability import metrics
from messenger.providers.meta import events as meta_events
from messenger.providers.meta import signature as meta_signature
from messenger.reply.ledger import ClaimState, ReplyLedger
from messenger.storage import OutboundMessage, Turn, UnreadMessage, codec
from tests.helpers import BIG_TEXT_CHARS, LONG_USER, META, event_ref, unstorable_batch

CONVERSATION = "meta#page#user"


def event(event_id: str, kind: Kind = Kind.MESSAGE, ts: int = 1_000, **fields: object) -> Event:
    return Event(
        provider=Provider.META, event_id=event_id, kind=kind, page_id="page", user_id="user", timestamp_ms=ts, **fields
    )  # type: ignore[arg-type]


def sent(store: MemoryStore, message_id: str, at_ms: int) -> None:
    """Record an outbound message the way a reply turn does: the item, and its place on the unread list."""
    store.record_outbound(OutboundMessage(CONVERSATION, "meta", message_id, "page", "user", "m_in", 0, at_ms, "sent"))
    on_unread_list(store, message_id, at_ms)


def on_unread_list(store: MemoryStore, message_id: str, at_ms: int) -> None:
    """What a reply turn does when it ends: the sent message joins the conversation's unread list."""
    turn = store.take_turn(CONVERSATION, "turn", now_ms=0, until_ms=1)
    assert isinstance(turn, Turn)
    store.end_turn(CONVERSATION, "turn", answered_through="", unread=[*turn.unread, UnreadMessage(message_id, at_ms)])


def test_each_event_is_stored_once():
    store = MemoryStore()
    first = ingest(store, [event("m1"), event("m2")])
    again = ingest(store, [event("m1"), event("m2"), event("m3")])
    assert (first.stored, first.duplicates) == (2, 0) and (again.stored, again.duplicates) == (1, 2)
    assert sorted(event_ref(sk) for _, sk in store.items) == ["EVT#m1", "EVT#m2", "EVT#m3"]


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
    # Then nothing of the conversation after the failed event is stored (it would overtake m3 in the stream)
    assert {event_ref(sk) for _, sk in store.items} == {"EVT#m1", "EVT#m2"}
    # And the provider's redelivery stores the missing events, in order, and recognises the others
    again = ingest(store, batch)
    assert (again.stored, again.duplicates) == (2, 2)
    assert sorted(event_ref(sk) for _, sk in store.items) == ["EVT#m1", "EVT#m2", "EVT#m3", "EVT#m4"]


def test_a_conversations_events_are_stored_in_the_batchs_order_while_conversations_run_side_by_side():
    # Given a store whose puts take a random while, and a batch interleaving 8 users' 6 messages each
    class Slow(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.order: list[str] = []
            self.rng = random.Random(7)

        def store_event(self, event: Event, now_s: int | None = None) -> bool:
            time.sleep(self.rng.random() / 200)
            self.order.append(event.event_id)
            return super().store_event(event, now_s)

    def of(user: str, n: int) -> Event:
        return Event(
            provider=Provider.META,
            event_id=f"{user}.{n}",
            kind=Kind.MESSAGE,
            page_id="page",
            user_id=user,
            timestamp_ms=1_000 + n,
        )

    users = [f"u{i}" for i in range(8)]
    store = Slow()
    # When the batch is stored with several workers
    result = ingest(store, [of(user, n) for n in range(6) for user in users], workers=8)
    # Then every event is stored once and each user's events reached the table in the user's order
    assert result.stored == 48
    for user in users:
        assert [e for e in store.order if e.startswith(user + ".")] == [f"{user}.{n}" for n in range(6)]


def test_delivery_mids_and_read_watermarks_move_outbound_statuses():
    store = MemoryStore()
    for mid, at in (("o1", 1_000), ("o2", 2_000), ("o3", 3_000)):
        sent(store, mid, at)
    result = ingest(store, [event("d1", Kind.DELIVERY, mids=["o1"]), event("r1", Kind.READ, watermark_ms=2_000)])
    assert result.statuses_applied == 3
    assert [store.message(CONVERSATION, m)["status"] for m in ("o1", "o2", "o3")] == ["read", "read", "sent"]


def test_a_vonage_status_creates_or_moves_the_outbound_message():
    store = MemoryStore()
    status = Event(
        provider=Provider.VONAGE,
        event_id="u1#status#delivered",
        kind=Kind.STATUS,
        page_id="page",
        user_id="user",
        timestamp_ms=5,
        status="delivered",
        mids=["u1"],
        from_page=True,
    )
    assert ingest(store, [status]).statuses_applied == 1
    assert store.message("vonage#page#user", "u1")["status"] == "delivered"


def vonage_status(message_id: str, status: str, ts: int) -> Event:
    return Event(
        provider=Provider.VONAGE,
        event_id=f"{message_id}#status#{status}",
        kind=Kind.STATUS,
        page_id="page",
        user_id="user",
        timestamp_ms=ts,
        status=status,
        mids=[message_id],
        from_page=True,
    )


def test_a_submitted_callback_for_a_recorded_reply_reads_instead_of_a_failing_write():
    # Given a reply the reply function recorded as submitted
    store = MemoryStore()
    conversation = "vonage#page#user"
    store.record_outbound(OutboundMessage(conversation, "vonage", "u1", "page", "user", "in1", 0, 5, "submitted"))
    store.operations.clear()
    # When Vonage's submitted callback arrives
    result = ingest(store, [vonage_status("u1", "submitted", 6)])
    # Then the event is stored, the message is read once and not written (its update would change nothing)
    assert (result.stored, result.statuses_applied) == (1, 0)
    assert store.operations["UpdateItem"] == 0 and store.operations["GetItem"] == 1
    assert store.message(conversation, "u1")["status"] == "submitted"
    # And the later statuses still move it (no read before those: they usually change the message)
    store.operations.clear()
    ingest(store, [vonage_status("u1", "delivered", 7), vonage_status("u1", "read", 8)])
    assert store.operations["GetItem"] == 0 and store.message(conversation, "u1")["status"] == "read"


def test_a_submitted_callback_before_the_reply_is_recorded_creates_the_message():
    store = MemoryStore()
    assert ingest(store, [vonage_status("u2", "submitted", 6)]).statuses_applied == 1
    assert store.message("vonage#page#user", "u2")["status"] == "submitted"


def test_a_persons_echo_pauses_and_our_echo_settles_an_ambiguous_reply():
    store = MemoryStore()
    ledger = ReplyLedger(store)
    inbound = InboundMessage("meta", "m.in", "message", "page", "user", CONVERSATION, 1, text="hi")
    ledger.finish(ledger.claim(inbound), ClaimState.AMBIGUOUS)
    ingest(
        store, [event("echo1", Kind.ECHO, ts=5_000, from_page=True, metadata=bot_metadata("m.in"))], pause_seconds=60
    )
    assert store.reply_state(CONVERSATION, "m.in").state == "sent" and store.paused_until(CONVERSATION) == 0
    ingest(store, [event("echo2", Kind.ECHO, ts=6_000, from_page=True)], pause_seconds=60)
    assert store.paused_until(CONVERSATION) == 66_000


# -- events DynamoDB cannot take as they are ----------------------------------------------------------------


def items_by_event_id(store: MemoryStore) -> dict[str, dict]:
    return {item["event_id"]: item for item in store.items.values() if "event_id" in item}


def test_unstorable_events_are_stored_bounded_and_their_neighbours_once():
    # Given a signed batch with an oversized text, a long mid, a long user id and a huge number between two
    # ordinary messages
    body, mids = unstorable_batch("u")
    meta_signature.verify_signature(META["app_secret"], body, meta_signature.sign(META["app_secret"], body))
    events = meta_events.parse_body(body)
    store = MemoryStore()
    # When it is ingested
    result = ingest(store, events)
    # Then every event is stored, none skipped, and nothing raised (the webhook answers 200)
    assert (result.stored, result.duplicates, result.skipped) == (6, 0, 0)
    items = items_by_event_id(store)
    assert items[mids["ok1"]]["text"] == "first" and "omitted" not in items[mids["ok1"]]
    # The oversized fields are replaced by their size and SHA-256
    big = items[mids["big"]]
    assert "text" not in big and big["record_type"] == "inbound"
    assert big["omitted"]["text"] == {
        "bytes": BIG_TEXT_CHARS,
        "sha256": hashlib.sha256(b"a" * BIG_TEXT_CHARS).hexdigest(),
    }
    assert codec.item_size(codec.to_item(big)) <= codec.MAX_ITEM_BYTES
    # Long ids are hashed into the key; the original is kept as an attribute
    long_mid = items[mids["long_mid"]]
    assert len(long_mid["sk"].encode()) <= codec.MAX_SK_BYTES and "~sha256:" in long_mid["sk"]
    assert long_mid["text"] == "long mid"
    long_user = items[mids["long_user"]]
    assert len(long_user["pk"].encode()) <= codec.MAX_PK_BYTES and long_user["user_id"] == LONG_USER
    # A number DynamoDB cannot hold is left out and said so
    assert items[mids["huge_number"]]["omitted"] == {"attachments": {"reason": "not_storable"}}
    # When the batch is redelivered, nothing new is stored
    again = ingest(store, meta_events.parse_body(body))
    assert (again.stored, again.duplicates, again.skipped) == (0, 6, 0)
    assert len(store.items) == 6


def test_statuses_for_a_long_mid_reach_its_hashed_key():
    # Given an outbound message with an absurdly long id
    store = MemoryStore()
    long_mid = "o" * 3000
    sent(store, long_mid, 1_000)
    # When a delivery names it / Then its status moves (the same long id hashes to the same key)
    assert ingest(store, [event("d1", Kind.DELIVERY, mids=[long_mid])]).statuses_applied == 1
    assert store.message(CONVERSATION, long_mid)["status"] == "delivered"


def test_an_event_no_form_of_which_can_be_stored_is_skipped_and_counted():
    class RefusesM2(MemoryStore):
        def store_event(self, event: Event, now_s: int | None = None) -> bool:
            if event.event_id == "m2":
                raise StorageRejectedError("ValidationException")
            return super().store_event(event, now_s)

    store = RefusesM2()
    result = ingest(store, [event("m1"), event("m2"), event("m3")])
    assert (result.stored, result.skipped) == (2, 1)
    assert sorted(event_ref(sk) for _, sk in store.items) == ["EVT#m1", "EVT#m3"]
    assert metrics.metric_set["EventsSkipped"]["Value"] == [1.0]
    metrics.clear_metrics()


def test_bounded_keys_are_stable_and_idempotent():
    long = "meta#page#" + "u" * 4000
    bounded = codec.bounded_key_part(long, codec.MAX_PK_BYTES)
    assert bounded == codec.bounded_key_part(long, codec.MAX_PK_BYTES) != codec.bounded_key_part(long + "v", 2048)
    assert codec.bounded_key_part(bounded, codec.MAX_PK_BYTES) == bounded
    assert codec.bounded_key_part("meta#page#user", codec.MAX_PK_BYTES) == "meta#page#user"


# -- echoes of our own sends record the whole outbound message ------------------------------------------------


def our_echo(mid: str, ts: int, text: str = "Hello!") -> Event:
    return event(mid, Kind.ECHO, ts=ts, from_page=True, text=text, metadata=bot_metadata("m.in"))


def assert_read_reply(store: MemoryStore, mid: str, status: str = "read") -> None:
    item = store.message(CONVERSATION, mid)
    assert item["pk"] == CONVERSATION and item["record_type"] == "outbound" and item["status"] == status
    assert (item["text"], item["in_reply_to"], item["page_id"], item["user_id"]) == ("Hello!", "m.in", "page", "user")


def test_an_echo_after_an_ambiguous_send_records_the_message_and_its_statuses_move_on():
    # Given a reply whose send timed out and was given up (ambiguous)
    store = MemoryStore()
    ledger = ReplyLedger(store)
    inbound = InboundMessage("meta", "m.in", "message", "page", "user", CONVERSATION, 1, text="hi")
    ledger.finish(ledger.claim(inbound), ClaimState.AMBIGUOUS)
    # When its echo, then a delivery and a read watermark arrive
    ingest(store, [our_echo("m.out", 5_000)])
    ingest(store, [event("d1", Kind.DELIVERY, ts=6_000, mids=["m.out"])])
    ingest(store, [event("r1", Kind.READ, ts=7_000, watermark_ms=6_500)])
    # Then the claim is sent with the echo's mid, and the outbound message is whole and delivered. (A read
    # watermark finds only the replies a turn put on the unread list; one confirmed after it was given up
    # is not there: docs/design.md, "Unknown outcomes".)
    claim = store.reply_state(CONVERSATION, "m.in")
    assert claim.state == "sent" and claim.message_ids == ["m.out"]
    assert_read_reply(store, "m.out", "delivered")
    # And a second part's echo joins the claim's message ids, once
    ingest(store, [our_echo("m.out2", 5_100), our_echo("m.out2", 5_100)])
    assert store.reply_state(CONVERSATION, "m.in").message_ids == ["m.out", "m.out2"]


def test_the_echo_of_a_reply_already_settled_as_sent_costs_one_read_and_no_reconciling_write():
    # Given a reply the reply function sent, recorded and settled with the echo's mid
    store = MemoryStore()
    ledger = ReplyLedger(store)
    inbound = InboundMessage("meta", "m.in", "message", "page", "user", CONVERSATION, 1, text="hi")
    claim = ledger.claim(inbound)
    ledger.record_outbound(inbound, "m.out", status="sent", text="Hello!", part_index=0)
    claim.message_ids.append("m.out")
    ledger.finish(claim, ClaimState.SENT)
    before = store.message(CONVERSATION, "m.out")
    store.operations.clear()
    # When its echo arrives
    result = ingest(store, [our_echo("m.out", 5_000)])
    # Then the echo is stored, the claim read once, and neither the message nor the claim written
    assert result.stored == 1 and store.operations["UpdateItem"] == 0 and store.operations["GetItem"] == 1
    assert store.message(CONVERSATION, "m.out") == before
    assert store.reply_state(CONVERSATION, "m.in").echo_mids == []
    # And an echo of a mid the claim does not hold (another part) is reconciled as before
    ingest(store, [our_echo("m.other", 5_100)])
    assert store.message(CONVERSATION, "m.other")["in_reply_to"] == "m.in"


def test_an_echo_before_the_ambiguous_outcome_makes_the_reply_sent_with_the_echo_mid():
    # Given a reply being sent (claimed) when its echo arrives
    store = MemoryStore()
    ledger = ReplyLedger(store)
    inbound = InboundMessage("meta", "m.in", "message", "page", "user", CONVERSATION, 1, text="hi")
    claim = ledger.claim(inbound)
    ingest(store, [our_echo("m.out", 5_000)])
    # When the reply function then finds its send unclear, it asks the ledger for a confirmation
    assert ledger.confirmed(claim)
    ledger.finish(claim, ClaimState.SENT, {"reconciled_by": "echo"})
    on_unread_list(store, "m.out", 5_000)
    # Then the claim records the echo's mid, and the message's statuses take it to read
    assert store.reply_state(CONVERSATION, "m.in").message_ids == ["m.out"]
    ingest(
        store,
        [event("d1", Kind.DELIVERY, ts=6_000, mids=["m.out"]), event("r1", Kind.READ, ts=7_000, watermark_ms=6_500)],
    )
    assert_read_reply(store, "m.out")
