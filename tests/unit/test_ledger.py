"""The reply ledger's claim states on the in-memory store: one sender per reply, statuses never regress."""

from __future__ import annotations

import pytest

from devkit.memory_store import MemoryStore
from messenger.messages import InboundMessage
from messenger.reply.ledger import Claim, ClaimBusyError, ClaimState, ReplyLedger, Settled

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
    return ReplyLedger(MemoryStore(), clock=clock, confirm_window_ms=30_000)


def test_a_claim_found_mid_send_is_taken_over_as_unconfirmed_never_sent_again(ledger, clock):
    # Given a claim whose invocation ended mid-send (claims are made only by the turn's holder, so the next
    # holder finding it `claimed` knows its owner is gone)
    first = ledger.claim(inbound())
    assert isinstance(first, Claim) and first.attempts == 1 and first.confirm_by_ms is None
    clock.now_s += 5
    # When the next holder claims it
    second = ledger.claim(inbound())
    # Then it awaits a confirmation for the window from the unclear send, instead of sending
    assert isinstance(second, Claim) and second.confirm_by_ms == 1_800_000_000_000 + 30_000
    assert ledger.store.reply_state(CONVERSATION, "m1").state == "unconfirmed"
    # And the first owner can no longer write: its token was replaced
    with pytest.raises(ClaimBusyError):
        ledger.finish(first, ClaimState.SENT)


@pytest.mark.parametrize("state", [ClaimState.SENT, ClaimState.FAILED, ClaimState.AMBIGUOUS, ClaimState.SKIPPED])
def test_a_settled_reply_is_never_claimed_again(ledger, state):
    claim = ledger.claim(inbound())
    claim.message_ids.append("mid-1")
    ledger.finish(claim, state)
    settled = ledger.claim(inbound())
    assert isinstance(settled, Settled) and settled.state == state.value and settled.message_ids == ("mid-1",)


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


def test_an_unconfirmed_claim_keeps_its_window_when_taken_over_again(ledger, clock):
    claim = ledger.claim(inbound())
    ledger.unconfirmed(claim, {"code": "meta_timeout_after_send"})
    assert claim.confirm_by_ms == 1_800_000_030_000
    clock.now_s += 20
    again = ledger.claim(inbound())
    assert isinstance(again, Claim) and again.confirm_by_ms == 1_800_000_030_000


def test_an_echo_confirms_an_unconfirmed_claim_and_is_remembered(ledger):
    claim = ledger.claim(inbound())
    ledger.unconfirmed(claim, {"error_class": "Timeout"})
    assert not ledger.confirmed(claim)
    assert ledger.store.reconcile_echo(CONVERSATION, "m1", "m_echo") is True
    assert ledger.confirmed(claim) and claim.message_ids == ["m_echo"]
    settled = ledger.claim(inbound())
    assert isinstance(settled, Settled) and settled.state == "sent"
    # And an echo of an unknown or already settled claim changes nothing
    assert ledger.store.reconcile_echo(CONVERSATION, "m1", "m_echo2") is False
    assert ledger.store.reconcile_echo(CONVERSATION, "unknown", "m_echo3") is False


def test_a_late_echo_still_marks_a_given_up_claim_sent(ledger):
    claim = ledger.claim(inbound())
    ledger.finish(claim, ClaimState.AMBIGUOUS, {"code": "unconfirmed"})
    assert ledger.store.reconcile_echo(CONVERSATION, "m1", "m_echo") is True
    assert ledger.store.reply_state(CONVERSATION, "m1").state == "sent"


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
