"""The conversation's turn on the in-memory store: the table, not the stream, decides the order of replies.

Doorbells (stream records) arrive in any order, twice, or while another invocation holds the turn; the
replies still go out once each, in the order the user sent the messages (docs/design.md, "Ordering").
"""

from __future__ import annotations

import pytest

from devkit.memory_store import MemoryStore
from messenger.errors import RetryLaterError, TurnLostError
from messenger.events import Event, Kind, Provider
from messenger.handover import bot_metadata
from messenger.inbound.ingest import ingest
from messenger.messages import InboundMessage
from messenger.reply.ledger import MAX_ATTEMPTS
from messenger.reply.pipeline import Outcome
from messenger.reply.records import inbound_from_item
from messenger.reply.turn import CLOCK_MARGIN_MS, LEASE_MS, MAX_POLL_S, RENEW_BELOW_MS, TurnKeeper
from messenger.sending import AmbiguousSendError, RetryPolicy, TransientSendError
from messenger.storage import codec
from tests.helpers import NOW_MS, inbound_event
from tests.unit.test_reply_pipeline import FakeSender, pipeline

CONVERSATION = "meta#page#a"


class Echoing(FakeSender):
    """Answers with the text it was asked to send, so the order of `posted` is the order of replies."""

    def plan(self, inbound, replies, policy):
        return [{"text": f"re:{inbound.text}"}]


def stored(store: MemoryStore, *texts_and_times: tuple[str, int]) -> list[InboundMessage]:
    """Store messages of user "a" (text, provider time) and return them as the stream would deliver them."""
    messages = []
    for text, ts in texts_and_times:
        event = inbound_event(f"m-{text}", "a", text=text, ts=ts)
        assert store.store_event(event)
        message = inbound_from_item(codec.from_item(codec.event_item(event, now_s=0, retention_s=0)))
        assert message is not None and message.conversation_id == CONVERSATION
        messages.append(message)
    return messages


def replies(sender: FakeSender) -> list[str]:
    return [body["text"] for body in sender.posted]


def test_doorbells_newest_first_still_answer_in_the_users_order():
    # Given three messages the user sent in order, stored, whose records arrive newest first
    store = MemoryStore()
    first, second, third = stored(store, ("one", NOW_MS - 3_000), ("two", NOW_MS - 2_000), ("three", NOW_MS - 1_000))
    sender = Echoing()
    p, _ = pipeline(sender, store=store)
    # When the newest record rings first
    outcomes = p.answer([third])
    # Then its turn answers all three, oldest first
    assert replies(sender) == ["re:one", "re:two", "re:three"]
    assert outcomes == {first.event_id: Outcome.SENT, second.event_id: Outcome.SENT, third.event_id: Outcome.SENT}
    # And the older records, arriving later (or again), send nothing
    assert p.answer([first, second]) == {first.event_id: Outcome.ALREADY_SENT, second.event_id: Outcome.ALREADY_SENT}
    assert p.handle(third) == Outcome.ALREADY_SENT and len(sender.posted) == 3


def test_a_message_stored_behind_what_was_answered_is_still_answered_once():
    store = MemoryStore()
    one, three = stored(store, ("one", NOW_MS - 3_000), ("three", NOW_MS - 1_000))
    sender = Echoing()
    p, _ = pipeline(sender, store=store)
    p.answer([one, three])
    # When a message with an earlier provider time is stored only now (the provider redelivered it late)
    (two,) = stored(store, ("two", NOW_MS - 2_000))
    # Then its own record answers it, once
    assert p.answer([two]) == {two.event_id: Outcome.SENT}
    assert p.answer([two]) == {two.event_id: Outcome.ALREADY_SENT}
    assert replies(sender) == ["re:one", "re:three", "re:two"]


def test_a_failing_message_holds_back_only_its_conversation_and_its_later_messages_follow_it():
    store = MemoryStore()
    one, two = stored(store, ("one", NOW_MS - 2_000), ("two", NOW_MS - 1_000))
    (other,) = [
        InboundMessage("meta", "m-x", "message", "page", "b", "meta#page#b", NOW_MS, text="elsewhere"),
    ]
    sender = Echoing([TransientSendError("503")])
    p, ledger = pipeline(sender, retry=RetryPolicy(max_attempts=1), store=store)
    # When the first message fails transiently, the conversation is retried and "two" is not attempted
    with pytest.raises(RetryLaterError):
        p.answer([two])
    assert replies(sender) == ["re:one"] and ledger.claim_state(two.event_id) is None
    # And another conversation is not held back by it
    assert p.answer([other]) == {"m-x": Outcome.SENT}
    # When the records are delivered again, "one" goes out, then "two"
    assert p.answer([one, two]) == {one.event_id: Outcome.SENT, two.event_id: Outcome.SENT}
    assert replies(sender) == ["re:one", "re:elsewhere", "re:one", "re:two"]


def test_after_max_attempts_a_failing_message_is_given_up_and_the_later_ones_are_answered():
    store = MemoryStore()
    one, two = stored(store, ("one", NOW_MS - 2_000), ("two", NOW_MS - 1_000))
    sender = Echoing([TransientSendError("503")] * MAX_ATTEMPTS)
    p, ledger = pipeline(sender, retry=RetryPolicy(max_attempts=1), store=store)
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(RetryLaterError):
            p.answer([two])
    # When the last allowed turn fails too
    outcomes = p.answer([two])
    # Then "one" is given up (failed, counted) and "two" answered right after
    assert outcomes == {one.event_id: Outcome.FAILED, two.event_id: Outcome.SENT}
    assert ledger.store.reply_state(CONVERSATION, one.event_id).state == "failed"
    assert p.stats.counts["ReplyGivenUp"] == 1
    assert replies(sender) == ["re:one"] * MAX_ATTEMPTS + ["re:two"]


def test_an_unclear_send_holds_the_later_replies_until_its_echo_confirms_it():
    store = MemoryStore()
    one, two = stored(store, ("one", NOW_MS - 2_000), ("two", NOW_MS - 1_000))
    sender = Echoing([AmbiguousSendError("read timeout")])
    p, ledger = pipeline(sender, store=store)
    waited: list[float] = []

    def echo_arrives(seconds: float) -> None:
        # Meta's echo of the timed-out send comes in while the turn waits (the webhook ingests it)
        waited.append(seconds)
        p.fake_clock.now_s += seconds
        if len(waited) == 3:
            echo = Event(
                Provider.META,
                "m_echo_1",
                Kind.ECHO,
                "page",
                "a",
                NOW_MS,
                from_page=True,
                metadata=bot_metadata(one.event_id),
                text="re:one",
            )
            ingest(store, [echo])

    p.sleep = echo_arrives
    outcomes = p.answer([two])
    # Then "one" is recorded as sent (confirmed), and "two" was sent only after the confirmation
    assert outcomes == {one.event_id: Outcome.SENT, two.event_id: Outcome.SENT}
    assert replies(sender) == ["re:one", "re:two"] and len(waited) == 3
    assert ledger.store.reply_state(CONVERSATION, one.event_id).message_ids == ["m_echo_1"]


def test_an_unclear_send_never_confirmed_is_given_up_after_the_window_and_not_sent_again():
    store = MemoryStore()
    one, two = stored(store, ("one", NOW_MS - 2_000), ("two", NOW_MS - 1_000))
    sender = Echoing([AmbiguousSendError("read timeout")])
    p, ledger = pipeline(sender, store=store)
    assert p.answer([one, two]) == {one.event_id: Outcome.AMBIGUOUS, two.event_id: Outcome.SENT}
    assert replies(sender) == ["re:one", "re:two"]
    assert sum(p.sleeps) >= ledger.confirm_window_ms / 1000 and p.stats.counts["ReplyAmbiguous"] == 1


def test_a_turn_left_by_a_dead_invocation_is_taken_over_when_its_lease_runs_out():
    store = MemoryStore()
    (one,) = stored(store, ("one", NOW_MS - 1_000))
    # Given an invocation that took the turn (until its deadline, 20 s on) and died
    assert not isinstance(store.take_turn(CONVERSATION, "dead", now_ms=NOW_MS, until_ms=NOW_MS + 20_000), int)
    sender = Echoing()
    p, _ = pipeline(sender, store=store)
    # When a record rings, it waits for the lease to run out, then answers
    assert p.answer([one], remaining_ms=lambda: 60_000) == {one.event_id: Outcome.SENT}
    assert 20 <= sum(p.sleeps) <= 20 + MAX_POLL_S


def test_a_turn_reaches_the_invocations_deadline_and_a_caller_without_one_renews_it():
    store = MemoryStore()
    (one,) = stored(store, ("one", NOW_MS - 1_000))
    keeper = TurnKeeper(store, clock=lambda: NOW_MS / 1000)
    # An invocation's lease is its deadline plus the clock margin: no renewal while it runs
    turn = keeper.take(CONVERSATION, remaining_ms=45_000)
    assert turn.until_ms == NOW_MS + 45_000 + CLOCK_MARGIN_MS
    keeper.end(turn, "", [])
    # A caller without a deadline holds LEASE_MS and renews it once less than RENEW_BELOW_MS is left
    clock = [NOW_MS / 1000]
    keeper = TurnKeeper(store, clock=lambda: clock[0])
    turn = keeper.take(CONVERSATION, remaining_ms=None)
    assert turn.until_ms == NOW_MS + LEASE_MS
    clock[0] += (LEASE_MS - RENEW_BELOW_MS) / 1000 + 1
    keeper.keep(turn)
    assert turn.until_ms == int(clock[0] * 1000) + LEASE_MS == store.turn_held_until(CONVERSATION)
    # And a holder whose lease ran out stops
    clock[0] += LEASE_MS / 1000
    with pytest.raises(TurnLostError):
        keeper.keep(turn)


def test_a_record_that_cannot_get_the_turn_in_time_is_retried_and_sends_nothing():
    store = MemoryStore()
    (one,) = stored(store, ("one", NOW_MS - 1_000))
    store.take_turn(CONVERSATION, "alive", now_ms=NOW_MS, until_ms=NOW_MS + 60_000)
    sender = Echoing()
    p, _ = pipeline(sender, store=store)
    with pytest.raises(RetryLaterError):
        p.answer([one], remaining_ms=lambda: 15_000)
    assert sender.posted == []


def test_read_receipts_mark_the_unread_replies_up_to_the_watermark_at_a_bounded_cost():
    # Given a long conversation, every reply already read, then three more replies a second apart
    store = MemoryStore()
    sender = Echoing()
    p, _ = pipeline(sender, store=store)
    for n in range(60):
        (message,) = stored(store, (f"old{n}", NOW_MS - 100_000 + n))
        p.answer([message])
    ingest(
        store, [Event(Provider.META, "r-old", Kind.READ, "page", "a", NOW_MS, watermark_ms=int(p.fake_clock() * 1000))]
    )
    sent_at = []
    for n in range(3):
        p.fake_clock.now_s += 1
        sent_at.append(int(p.fake_clock() * 1000))
        (message,) = stored(store, (f"new{n}", NOW_MS + n))
        p.answer([message])
    store.operations.clear()
    # When a read receipt's watermark covers the first two of them
    result = ingest(store, [Event(Provider.META, "r1", Kind.READ, "page", "a", NOW_MS, watermark_ms=sent_at[1])])
    # Then the cost is one read of the conversation state (not of the conversation) and a write per status
    assert store.operations["GetItem"] == 1 and store.operations["Query"] == 0
    assert store.operations["UpdateItem"] == 2 + 1  # two statuses, the watermark
    # And exactly those two are read
    statuses = {i["text"]: i["status"] for i in store.conversation_items(CONVERSATION) if i["sk"].startswith("MSG#")}
    assert [statuses[f"re:new{n}"] for n in range(3)] == ["read", "read", "sent"]
    assert result.statuses_applied == 2
