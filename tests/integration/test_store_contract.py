"""The in-memory store keeps the same contract as DynamoStore on DynamoDB Local: the same verbs, the same answers."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.models import Event, Kind, Provider
from messenger.storage import NewClaim, OutboundMessage
from messenger.storage.memory import MemoryStore
from tests.helpers import event_ref

pytestmark = pytest.mark.integration
C = "meta#page#user"


@pytest.fixture(params=["memory", "dynamodb"])
def store(request, table) -> Any:
    return MemoryStore() if request.param == "memory" else table.store()


def message(event_id: str, user: str = "user") -> Event:
    return Event(
        provider=Provider.META,
        event_id=event_id,
        kind=Kind.MESSAGE,
        page_id="page",
        user_id=user,
        timestamp_ms=1_000,
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


def test_statuses_never_regress_and_watermarks_find_what_was_sent_before(store):
    store.record_outbound(outbound("o1", 1_000))
    store.record_outbound(outbound("o2", 2_000))
    store.record_outbound(outbound("o3", 3_000))
    assert store.apply_status(C, "o1", "read", at_ms=1_500)
    assert not store.apply_status(C, "o1", "delivered", at_ms=1_600)
    assert not store.apply_status(C, "o1", "bogus", at_ms=1_700)
    assert store.outbound_before(C, 2_500, below="read") == ["o2"]
    assert store.outbound_before(C, 2_500, below="delivered") == ["o2"]
    assert store.apply_status(C, "early", "delivered", at_ms=1, error={"code": "x"})
    store.record_outbound(outbound("early", 5_000))
    early = store.message(C, "early")
    assert (early["status"], early["status_error"], early["sent_at_ms"]) == ("delivered", {"code": "x"}, 5_000)


def test_claims_are_won_once_reclaimed_by_token_and_settled_by_their_owner(store):
    assert store.claim_reply(NewClaim(C, "m1", "meta", "t1", 10)) is None
    existing = store.claim_reply(NewClaim(C, "m1", "meta", "t2", 20))
    assert existing is not None and (existing.state, existing.token, existing.updated_at_ms) == ("claimed", "t1", 10)
    assert not store.settle_reply(C, "m1", "wrong", {"state": "sent"})
    assert store.settle_reply(C, "m1", "t1", {"state": "retryable", "parts_done": 1, "message_ids": ["o1"]})
    assert not store.reclaim_reply(C, "m1", old_token="t9", token="t3", attempts=2, now_ms=30)
    assert store.reclaim_reply(C, "m1", old_token="t1", token="t3", attempts=2, now_ms=30)
    state = store.reply_state(C, "m1")
    assert (state.state, state.token, state.attempts, state.parts_done, state.message_ids) == (
        "claimed",
        "t3",
        2,
        1,
        ["o1"],
    )
    assert store.settle_reply(C, "m1", "t3", {"state": "ambiguous"})
    assert store.reconcile_echo(C, "m1", "e1") and not store.reconcile_echo(C, "m1", "e2")
    assert store.reply_state(C, "m1").echo_mids == ["e1", "e2"] and store.reply_state(C, "m1").state == "sent"
    assert not store.reconcile_echo(C, "nope", "e3") and store.reply_state(C, "nope") is None


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
