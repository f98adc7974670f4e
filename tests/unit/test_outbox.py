"""The reply ledger's claim states on the in-memory store: one sender per reply, statuses never regress."""

from __future__ import annotations

import pytest

from messenger.messages import InboundMessage
from messenger.outbox import Claim, ClaimBusyError, ClaimState, ReplyLedger, Settled
from messenger.storage.memory import MemoryStore

CONVERSATION = "meta#page#user"


class Clock:
    def __init__(self, now_s: float = 1_800_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def inbound(event_id: str = "m1") -> InboundMessage:
    return InboundMessage("meta", event_id, "message", "page", "user", CONVERSATION, 1_800_000_000_000, text="hi")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> ReplyLedger:
    return ReplyLedger(MemoryStore(), clock=clock, stale_after_s=60)


def test_first_claim_owns_the_reply_and_a_second_worker_is_told_to_wait(ledger):
    claim = ledger.claim(inbound())
    assert isinstance(claim, Claim) and claim.attempts == 1
    with pytest.raises(ClaimBusyError):
        ledger.claim(inbound())


@pytest.mark.parametrize("state", [ClaimState.SENT, ClaimState.FAILED, ClaimState.AMBIGUOUS, ClaimState.SKIPPED])
def test_a_settled_reply_is_never_claimed_again(ledger, state):
    ledger.finish(ledger.claim(inbound()), state)
    assert ledger.claim(inbound()) == Settled(state.value)


def test_a_retryable_reply_is_reclaimed_and_resumes_after_its_sent_parts(ledger):
    first = ledger.claim(inbound())
    ledger.part_sent(first, "mid-1")
    ledger.finish(first, ClaimState.RETRYABLE, {"error_class": "TransientSendError"})
    second = ledger.claim(inbound())
    assert isinstance(second, Claim)
    assert (second.attempts, second.parts_done, second.message_ids) == (2, 1, ["mid-1"])
    # And the first owner can no longer write: its token was replaced
    with pytest.raises(ClaimBusyError):
        ledger.finish(first, ClaimState.SENT)


def test_a_stale_claim_is_settled_ambiguous_never_resent(ledger, clock):
    ledger.claim(inbound())
    clock.now_s += 61
    assert ledger.claim(inbound()) == Settled(ClaimState.AMBIGUOUS.value)
    state = ledger.store.reply_state(CONVERSATION, "m1")
    assert state is not None and state.state == "ambiguous"


def test_an_echo_settles_an_ambiguous_claim_and_is_remembered(ledger):
    claim = ledger.claim(inbound())
    assert not ledger.echoed(claim)
    ledger.finish(claim, ClaimState.AMBIGUOUS, {"error_class": "Timeout"})
    assert ledger.store.reconcile_echo(CONVERSATION, "m1", "m_echo") is True
    assert ledger.echoed(claim)
    assert ledger.claim(inbound()) == Settled("sent")
    # And an echo of an unknown or already settled claim changes nothing
    assert ledger.store.reconcile_echo(CONVERSATION, "m1", "m_echo2") is False
    assert ledger.store.reconcile_echo(CONVERSATION, "unknown", "m_echo3") is False


def test_outbound_record_keeps_a_status_that_arrived_first(ledger):
    store = ledger.store
    assert store.apply_status(CONVERSATION, "mid-9", "delivered", at_ms=5)
    ledger.record_outbound(inbound(), "mid-9", status="sent", text="hello", part_index=0)
    item = store.message(CONVERSATION, "mid-9")
    assert item["status"] == "delivered" and item["in_reply_to"] == "m1" and item["text"] == "hello"
    assert not store.apply_status(CONVERSATION, "mid-9", "sent", at_ms=6)
    assert store.apply_status(CONVERSATION, "mid-9", "read", at_ms=7)
    assert store.message(CONVERSATION, "mid-9")["status"] == "read"


def test_every_ledger_item_expires(ledger):
    claim = ledger.claim(inbound())
    ledger.record_outbound(inbound(), "mid-1", status="sent", text="x", part_index=0)
    ledger.finish(claim, ClaimState.SENT)
    ledger.pause(inbound(), 10, 1)
    assert all("expires_at" in item for item in ledger.store.items.values())
