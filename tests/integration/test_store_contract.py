"""The in-memory store keeps the same contract as DynamoStore on DynamoDB Local: the same verbs, the same answers."""

from __future__ import annotations

from typing import Any

import pytest

from devkit.memory_store import MemoryStore
from messenger.errors import TurnLostError
from messenger.events import Event, Kind, Provider
from messenger.storage import NewClaim, OutboundMessage, Turn, UnreadMessage, event_key
from tests.helpers import event_ref

pytestmark = pytest.mark.integration
C = "meta#page#user"


@pytest.fixture(params=["memory", "dynamodb"])
def store(request, table) -> Any:
    return MemoryStore() if request.param == "memory" else table.store()


def message(event_id: str, user: str = "user", *, at: int = 1_000, kind: Kind = Kind.MESSAGE) -> Event:
    return Event(
        provider=Provider.META,
        event_id=event_id,
        kind=kind,
        page_id="page",
        user_id=user,
        timestamp_ms=at,
        text="héllo",
        raw={"mid": event_id, "n": 1.5},
    )


def outbound(message_id: str, sent_at_ms: int, status: str = "sent") -> OutboundMessage:
    return OutboundMessage(C, "meta", message_id, "page", "user", "m1", 0, sent_at_ms, status, "reply")


def test_events_dedupe_and_read_back_in_key_order(store):
    assert [store.store_event(message(m)) for m in ("m2", "m1", "m2")] == [True, True, False]
    items = store.conversation_items(C)
    assert [(i["pk"], event_ref(i["sk"])) for i in items] == [(C, "EVT#m1"), (C, "EVT#m2")]
    assert items[0]["text"] == "héllo" and items[0]["record_type"] == "inbound" and items[0]["expires_at"] > 0
    assert store.conversation_items("meta#page#nobody") == []


def end_turn_with_unread(store: Any, unread: list[UnreadMessage]) -> None:
    """What a reply turn leaves after sending: the unread outbound messages on the conversation state."""
    assert isinstance(store.take_turn(C, "w", now_ms=0, until_ms=1), Turn)
    store.end_turn(C, "w", answered_through="", unread=unread)


def test_statuses_never_regress_and_watermarks_find_the_unread_sent_since_the_last(store):
    for mid, at in (("o1", 1_000), ("o2", 2_000), ("o3", 3_000)):
        store.record_outbound(outbound(mid, at))
    end_turn_with_unread(store, [UnreadMessage("o1", 1_000), UnreadMessage("o2", 2_000), UnreadMessage("o3", 3_000)])
    assert store.apply_status(C, "o1", "read", at_ms=1_500)
    assert not store.apply_status(C, "o1", "delivered", at_ms=1_600)
    assert not store.apply_status(C, "o1", "bogus", at_ms=1_700)
    # The unread list does not follow statuses (o1 read by mid stays until a read watermark covers it)
    assert store.outbound_before(C, 2_500, below="read") == ["o1", "o2"]
    assert store.outbound_before(C, 2_500, below="delivered") == ["o1", "o2"]
    assert store.advance_watermark(C, "read", 2_500) and not store.advance_watermark(C, "read", 2_000)
    assert store.outbound_before(C, 3_500, below="read") == ["o3"]
    assert store.outbound_before(C, 2_500, below="read") == []
    assert store.outbound_before(C, 2_500, below="delivered") == ["o1", "o2"]  # each status its own watermark
    assert store.outbound_before("meta#page#nobody", 9_000) == []
    assert store.apply_status(C, "early", "delivered", at_ms=1, error={"code": "x"})
    store.record_outbound(outbound("early", 5_000))
    early = store.message(C, "early")
    assert (early["status"], early["status_error"], early["sent_at_ms"]) == ("delivered", {"code": "x"}, 5_000)


def test_claims_are_won_once_reclaimed_by_state_and_token_and_settled_by_their_owner(store):
    assert store.claim_reply(NewClaim(C, "m1", "meta", "t1", 10)) is None
    existing = store.claim_reply(NewClaim(C, "m1", "meta", "t2", 20))
    assert existing is not None and (existing.state, existing.token, existing.updated_at_ms) == ("claimed", "t1", 10)
    assert not store.settle_reply(C, "m1", "wrong", {"state": "sent"})
    assert store.settle_reply(C, "m1", "t1", {"state": "retryable", "parts_done": 1, "message_ids": ["o1"]})
    values = {"state": "claimed", "claim_token": "t3", "attempts": 2, "updated_at_ms": 30}
    assert not store.reclaim_reply(C, "m1", old_state="retryable", old_token="t9", values=values)
    assert not store.reclaim_reply(C, "m1", old_state="claimed", old_token="t1", values=values)
    assert store.reclaim_reply(C, "m1", old_state="retryable", old_token="t1", values=values)
    assert not store.reclaim_reply(C, "m1", old_state="retryable", old_token="t1", values=values)
    state = store.reply_state(C, "m1")
    assert (state.state, state.token, state.attempts, state.parts_done, state.message_ids) == (
        "claimed",
        "t3",
        2,
        1,
        ["o1"],
    )
    # A claim found `claimed` by the next turn holder is taken over as unconfirmed, with its deadline
    unconfirmed = {"state": "unconfirmed", "claim_token": "t4", "confirm_by_ms": 90, "updated_at_ms": 40}
    assert store.reclaim_reply(C, "m1", old_state="claimed", old_token="t3", values=unconfirmed)
    state = store.reply_state(C, "m1")
    assert (state.state, state.token, state.confirm_by_ms) == ("unconfirmed", "t4", 90)
    # An echo settles an unconfirmed claim as sent (True once), later echoes only join it
    assert store.reconcile_echo(C, "m1", "e1") and not store.reconcile_echo(C, "m1", "e2")
    assert store.reply_state(C, "m1").echo_mids == ["e1", "e2"] and store.reply_state(C, "m1").state == "sent"
    assert store.reply_state(C, "m1").message_ids == ["o1", "e1", "e2"]
    # An ambiguous one (given up) too; a sent one by its own send is not changed by an echo
    assert store.claim_reply(NewClaim(C, "m2", "meta", "t5", 10)) is None
    assert store.settle_reply(C, "m2", "t5", {"state": "ambiguous"})
    assert store.reconcile_echo(C, "m2", "e3") and store.reply_state(C, "m2").state == "sent"
    assert store.claim_reply(NewClaim(C, "m3", "meta", "t6", 10)) is None
    assert store.settle_reply(C, "m3", "t6", {"state": "sent", "message_ids": ["o3"]})
    assert not store.reconcile_echo(C, "m3", "o3") and store.reply_state(C, "m3").message_ids == ["o3"]
    assert not store.reconcile_echo(C, "nope", "e4") and store.reply_state(C, "nope") is None


def test_the_turn_is_held_by_one_token_until_it_ends_or_its_lease_runs_out(store):
    store.set_pause(C, 777, 1, "handover")
    turn = store.take_turn(C, "a", now_ms=1_000, until_ms=2_000)
    assert isinstance(turn, Turn)
    assert (turn.token, turn.answered_through, turn.paused_until_ms, turn.unread, turn.read_watermark_ms) == (
        "a",
        "",
        777,
        [],
        0,
    )
    # While "a" holds it, another token learns until when; renewing or ending with it fails
    assert store.take_turn(C, "b", now_ms=1_500, until_ms=2_500) == 2_000
    assert store.take_turn(C, "b", now_ms=2_000, until_ms=2_500) == 2_000  # the lease's last ms still counts
    with pytest.raises(TurnLostError):
        store.renew_turn(C, "b", until_ms=3_000)
    with pytest.raises(TurnLostError):
        store.end_turn(C, "b", answered_through="EVT#x", unread=[])
    store.renew_turn(C, "a", until_ms=3_000)
    assert store.take_turn(C, "b", now_ms=2_500, until_ms=4_000) == 3_000
    # Ending it saves the cursor and the unread list and lets go at once
    store.end_turn(C, "a", answered_through="EVT#000000000000002#m2", unread=[UnreadMessage("o1", 10)])
    with pytest.raises(TurnLostError):
        store.end_turn(C, "a", answered_through="EVT#z", unread=[])
    turn = store.take_turn(C, "b", now_ms=2_600, until_ms=4_000)
    assert isinstance(turn, Turn)
    assert (turn.answered_through, turn.unread) == ("EVT#000000000000002#m2", [UnreadMessage("o1", 10)])
    # A holder that never ends (it died) loses the turn when its lease has run out; its late end writes nothing
    assert store.take_turn(C, "c", now_ms=4_000, until_ms=5_000) == 4_000
    assert isinstance(store.take_turn(C, "c", now_ms=4_001, until_ms=5_000), Turn)
    with pytest.raises(TurnLostError):
        store.end_turn(C, "b", answered_through="EVT#999999999999999#late", unread=[])
    store.end_turn(C, "c", answered_through="", unread=[])  # no cursor: the saved one stays
    assert store.take_turn(C, "d", now_ms=4_002, until_ms=5_000).answered_through == "EVT#000000000000002#m2"


def test_pending_messages_are_the_inbound_after_the_cursor_in_provider_time_order(store):
    for event_id, at in (("late", 3_000), ("first", 1_000), ("second", 2_000)):
        assert store.store_event(message(event_id, at=at))
    store.store_event(message("echo", at=1_500, kind=Kind.ECHO))
    store.store_event(message("other", at=500, user="someone else"))
    store.record_outbound(outbound("o1", 1_200))
    pending = store.pending_messages(C, "")
    assert [(i["event_id"], i["conversation_id"]) for i in pending] == [
        ("first", C),
        ("second", C),
        ("late", C),
    ]
    assert pending[0]["sk"] == event_key(C, "first", 1_000)[1] and pending[0]["text"] == "héllo"
    assert [i["event_id"] for i in store.pending_messages(C, pending[1]["sk"])] == ["late"]
    assert store.pending_messages(C, pending[2]["sk"]) == []
    assert store.pending_messages("meta#page#nobody", "") == []


def test_pause_profile_and_deletion(store):
    assert store.paused_until(C) == 0
    assert store.set_pause(C, 500, 100, "echo") and not store.set_pause(C, 0, 50, "older")
    assert store.paused_until(C) == 500
    assert store.cached_profile(C) is None
    store.cache_profile(C, "Ada", 99)
    assert store.cached_profile(C).first_name == "Ada"
    store.cache_profile(C, None, 199)
    assert (store.cached_profile(C).first_name, store.cached_profile(C).expires_at) == (None, 199)
    store.store_event(message("m1"))
    store.store_event(message("k1", user="keep"))
    assert store.delete_user_data("code", "hash", [C]) == 3  # EVT, STATE, PROFILE
    assert store.conversation_items(C) == [] and len(store.conversation_items("meta#page#keep")) == 1
    record = store.deletion("code")
    assert (record["status"], record["deleted_items"], record["user_hash"]) == ("completed", 3, "hash")
