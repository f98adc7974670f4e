"""The reply pipeline with in-memory fakes: retries, multi-part resume, settled outcomes, metrics."""

from __future__ import annotations

from typing import Any

import pytest

from devkit.memory_store import MemoryStore
from messenger.errors import RetryLaterError
from messenger.messages import InboundMessage, OutgoingMessage
from messenger.reply.ledger import ClaimState, ReplyLedger
from messenger.reply.pipeline import ALREADY, Outcome, ReplyPipeline
from messenger.reply.profiles import ProfileCache
from messenger.reply.records import inbound_from_record
from messenger.reply.stats import ReplyStats
from messenger.sending import (
    AmbiguousSendError,
    PermanentSendError,
    RetryPolicy,
    SendResult,
    TransientSendError,
)
from tests.helpers import NOW_MS, inbound_record


def record(*args: Any, **fields: Any) -> InboundMessage | None:
    """The inbound message of a stream record, as the batch processor hands it to the pipeline."""
    return inbound_from_record(inbound_record(*args, **fields))


class Ledger(ReplyLedger):
    """The real ledger on the in-memory store, with shortcuts for the assertions."""

    def claim_state(self, event_id: str, user: str = "a") -> str | None:
        state = self.store.reply_state(f"meta#page#{user}", event_id)
        return state.state if state else None

    @property
    def outbound(self) -> list[str]:
        return [i["message_id"] for i in self.store.conversation_items("meta#page#a") if i["sk"].startswith("MSG#")]


class FakeSender:
    provider = "meta"
    initial_status = "sent"
    has_profiles = False

    def __init__(self, outcomes: list[Any] | None = None) -> None:
        self.outcomes = list(outcomes or [])
        self.posted: list[dict] = []

    def plan(self, inbound, replies, policy):
        return [{"text": r.text} for r in replies]

    def post(self, inbound, body):
        self.posted.append(body)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        return SendResult(f"mid-{len(self.posted)}", 1.0)

    def first_name(self, inbound):
        return None

    def body_text(self, body):
        return body.get("text")


class Fixed:
    def __init__(self, *texts: str) -> None:
        self.texts = texts

    def respond(self, message):
        return [OutgoingMessage(text=t) for t in self.texts]


class Clock:
    """A fake clock that a fake sleep moves on (the pipeline polls for confirmations and waits for turns)."""

    def __init__(self) -> None:
        self.now_s = NOW_MS / 1000
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds


def pipeline(
    sender: FakeSender, *texts: str, retry: RetryPolicy | None = None, store: MemoryStore | None = None
) -> tuple[ReplyPipeline, Ledger]:
    clock = Clock()
    ledger = Ledger(store or MemoryStore(), clock=clock)
    p = ReplyPipeline(
        ledger=ledger,
        responder=Fixed(*(texts or ("hi",))),
        senders={"meta": sender},
        retry=retry or RetryPolicy(max_attempts=3, base_delay_s=0.01, reserve_ms=0),
        clock=clock,
        sleep=clock.sleep,
        stats=ReplyStats(),
    )
    p.sleeps = clock.sleeps  # type: ignore[attr-defined]
    p.fake_clock = clock  # type: ignore[attr-defined]
    return p, ledger


def test_transient_errors_are_retried_with_backoff_then_succeed():
    sender = FakeSender([TransientSendError("503"), TransientSendError("503")])
    p, ledger = pipeline(sender)
    assert p.handle(record(1, "a")) == Outcome.SENT
    assert len(sender.posted) == 3 and len(p.sleeps) == 2 and all(0 <= s <= 0.02 for s in p.sleeps)
    assert p.stats.counts == {"ReplyRetried": 2, "RepliesSent": 1}


def test_reply_latency_is_the_users_message_time_to_the_providers_accept():
    # Given a message the user sent 2.5 s before the (fake) clock's now
    sender = FakeSender()
    p, _ = pipeline(sender)
    # When it is answered
    assert p.handle(record(1, "a", ts=NOW_MS - 2_500)) == Outcome.SENT
    # Then the end-to-end latency is recorded, and not for a reply that failed
    assert p.stats.end_to_end == [2_500]
    failing, _ = pipeline(FakeSender([PermanentSendError("bad")]))
    failing.handle(record(2, "b", ts=NOW_MS - 2_500))
    assert failing.stats.end_to_end == []


def test_retries_stop_when_the_invocation_runs_short():
    sender = FakeSender([TransientSendError("503")] * 5)
    p, ledger = pipeline(sender, retry=RetryPolicy(max_attempts=5, base_delay_s=0.01, reserve_ms=10_000))
    with pytest.raises(RetryLaterError):
        p.handle(record(1, "a"), remaining_ms=lambda: 9_000)
    assert len(sender.posted) == 1 and ledger.claim_state("m1") == ClaimState.RETRYABLE


def test_retry_after_longer_than_the_cap_is_not_waited_for():
    sender = FakeSender([TransientSendError("throttled", retry_after=600)])
    p, _ = pipeline(sender)
    with pytest.raises(RetryLaterError):
        p.handle(record(1, "a"))
    assert p.sleeps == []


def test_multi_part_reply_resumes_after_the_last_sent_part():
    # Given a three-part reply whose second part fails until the retry is exhausted
    sender = FakeSender([None, TransientSendError("x"), TransientSendError("x"), TransientSendError("x")])
    p, ledger = pipeline(sender, "one", "two", "three")
    with pytest.raises(RetryLaterError):
        p.handle(record(1, "a"))
    # When the record is delivered again
    assert p.handle(record(1, "a")) == Outcome.SENT
    # Then part one was not sent twice
    texts = [b["text"] for b in sender.posted]
    assert texts.count("one") == 1 and texts[-2:] == ["two", "three"]
    assert ledger.outbound == ["mid-1", "mid-5", "mid-6"]


@pytest.mark.parametrize(
    ("error", "state", "metric"),
    [
        (PermanentSendError("bad"), ClaimState.FAILED, "ReplyFailedPermanent"),
        (AmbiguousSendError("timeout"), ClaimState.AMBIGUOUS, "ReplyAmbiguous"),
    ],
)
def test_permanent_and_ambiguous_are_settled_not_retried(error, state, metric):
    sender = FakeSender([error])
    p, ledger = pipeline(sender)
    assert p.handle(record(1, "a")) in (Outcome.FAILED, Outcome.AMBIGUOUS)
    assert p.handle(record(1, "a")) == ALREADY[state]
    assert len(sender.posted) == 1 and ledger.claim_state("m1") == state
    assert p.stats.counts[metric] == 1


def test_ignored_records_touch_nothing():
    sender = FakeSender()
    p, ledger = pipeline(sender)
    assert p.handle(record(1, "a", record_type="outbound")) == Outcome.IGNORED
    assert p.handle(record(1, "a", name="MODIFY")) == Outcome.IGNORED
    assert ledger.store.items == {} and sender.posted == []


def test_backoff_is_bounded_and_jittered():
    policy = RetryPolicy(base_delay_s=0.2, max_delay_s=5)
    delays = [policy.delay(attempt) for attempt in range(1, 12) for _ in range(20)]
    assert all(0 <= d <= 5 for d in delays) and len(set(delays)) > 100


class Greeter:
    def respond(self, message):
        return [OutgoingMessage(text=f"Hi {message.first_name or 'there'}")]


@pytest.mark.parametrize(("has_profiles", "expected"), [(True, "Hi Ada"), (False, "Hi there")])
def test_the_profile_is_looked_up_only_through_a_sender_that_has_profiles(has_profiles, expected):
    # Given profile look-up on, and a sender that can (or cannot) look up a user's first name
    sender = FakeSender()
    sender.has_profiles = has_profiles
    sender.first_name = lambda inbound: "Ada"
    store = MemoryStore()
    p = ReplyPipeline(
        ledger=ReplyLedger(store, clock=lambda: NOW_MS / 1000),
        responder=Greeter(),
        senders={"meta": sender},
        profiles=ProfileCache(store, clock=lambda: NOW_MS / 1000),
        clock=lambda: NOW_MS / 1000,
        stats=ReplyStats(),
    )
    # When a message is answered
    assert p.handle(record(1, "a")) == Outcome.SENT
    # Then the name was used (and cached) only when the sender has profiles
    assert sender.posted == [{"text": expected}]
    assert (store.get(("meta#page#a", "PROFILE")) is not None) is has_profiles


def test_the_outbound_item_keeps_the_text_the_sender_reads_from_its_body():
    sender = FakeSender()
    p, ledger = pipeline(sender, "first", "second")
    assert p.handle(record(1, "a")) == Outcome.SENT
    texts = [i.get("text") for i in ledger.store.conversation_items("meta#page#a") if i["sk"].startswith("MSG#")]
    assert texts == ["first", "second"]
