"""The conversation's reply turn on DynamoDB Local (docs/design.md, "Ordering").

A stream record is only a doorbell: whoever holds the conversation's turn (a lease on its STATE item) answers
its pending messages in the order the user sent them. Here several invocations (pipelines, each its own
container as Lambda would run them) ring for one conversation at once, a turn is left behind by an invocation
that died, and read receipts with only a watermark are priced on a long conversation.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bench.common import CountingClient
from messenger.errors import TurnLostError
from messenger.events import Event, Kind, Provider
from messenger.inbound.ingest import ingest
from messenger.messages import InboundMessage, OutgoingMessage
from messenger.reply.ledger import ReplyLedger
from messenger.reply.pipeline import Outcome, ReplyPipeline
from messenger.reply.records import inbound_from_record
from messenger.reply.stats import ReplyStats
from messenger.reply.turn import RESERVE_MS, TurnKeeper
from messenger.sending import SendResult
from messenger.storage import DynamoStore, NewClaim, event_key
from messenger.storage.codec import UNREAD_LIMIT
from tests.helpers import inbound_event, stream_record

pytestmark = pytest.mark.integration

USER = "u1"
CONVERSATION = f"meta#page#{USER}"


def now_ms() -> int:
    return int(time.time() * 1000)


class Echo:
    """Answers each message with its own text: a send shows which message it answers."""

    def respond(self, message: InboundMessage) -> list[OutgoingMessage]:
        return [OutgoingMessage(text=message.text)]


class Recorder:
    """A Meta-like sender that records each send (thread-safe), takes `latency_s`, and counts moments at which
    two sends of one conversation were in flight at once."""

    provider = "meta"
    initial_status = "sent"
    has_profiles = False

    def __init__(self, latency_s: float = 0.0, message_id: str = "m_out_{}") -> None:
        self.latency_s = latency_s
        self.message_id = message_id
        self.lock = threading.Lock()
        self.sent: list[tuple[str, int]] = []  # (answered event id, epoch ms), in send order
        self.in_flight: Counter[str] = Counter()
        self.overlaps = 0

    def plan(self, inbound: InboundMessage, replies: list[OutgoingMessage], policy: Any) -> list[dict[str, Any]]:
        return [{"text": reply.text} for reply in replies]

    def post(self, inbound: InboundMessage, body: dict[str, Any]) -> SendResult:
        with self.lock:
            self.sent.append((inbound.event_id, now_ms()))
            number = len(self.sent)
            self.in_flight[inbound.conversation_id] += 1
            self.overlaps += self.in_flight[inbound.conversation_id] > 1
        time.sleep(self.latency_s)
        with self.lock:
            self.in_flight[inbound.conversation_id] -= 1
        return SendResult(self.message_id.format(number), self.latency_s * 1000)

    def first_name(self, inbound: InboundMessage) -> str | None:
        return None

    def body_text(self, body: dict[str, Any]) -> str | None:
        return str(body["text"])

    @property
    def answered(self) -> list[str]:
        return [event_id for event_id, _ in self.sent]


def invocation(store: DynamoStore, sender: Recorder, *, confirm_window_ms: int = 30_000) -> ReplyPipeline:
    """A reply function container of its own (its own pipeline and turn keeper) on the shared table."""
    return ReplyPipeline(
        ledger=ReplyLedger(store, confirm_window_ms=confirm_window_ms),
        responder=Echo(),
        senders={"meta": sender},
        stats=ReplyStats(),
        turns=TurnKeeper(store),
    )


def store_messages(store: DynamoStore, ids: list[str], *, start_ms: int, user: str = USER) -> list[InboundMessage]:
    """Messages stored by the webhook (`ids` in the order the user sent them, 1 ms apart), and the doorbell
    each write rings."""
    doorbells = []
    for n, event_id in enumerate(ids):
        event = inbound_event(event_id, user, ts=start_ms + n, text=f"text of {event_id}")
        assert store.store_event(event)
        inbound = inbound_from_record(stream_record(event, n + 1))
        assert inbound is not None
        doorbells.append(inbound)
    return doorbells


def claims(table: Any) -> dict[str, str]:
    return {i["inbound_event_id"]: i["state"] for i in table.items() if i["sk"].startswith("REPLY#")}


def state_item(table: Any, conversation: str = CONVERSATION) -> dict[str, Any]:
    return table.get((conversation, "STATE"))


def run_side_by_side(*calls: Any) -> list[Any]:
    """Run the calls on threads started together; their results (or the exception each raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


# -- two invocations, one conversation ---------------------------------------------------------------


def test_two_invocations_ringing_for_one_conversation_answer_each_message_once_in_order(table):
    # Given six stored messages of one person, whose doorbells reach two invocations at once (the newest
    # first in one of them, as AWS allows: order is only promised per item)
    store = table.store()
    ids = [f"m.two.{n}" for n in range(6)]
    doorbells = store_messages(store, ids, start_ms=now_ms() - 10_000)
    sender = Recorder(latency_s=0.03)
    first, second = invocation(store, sender), invocation(store, sender)
    # When both answer at the same moment, and a seventh message arrives (its own doorbell, a third
    # invocation) while they are at it
    late: dict[str, Any] = {}

    def third() -> dict[str, str]:
        time.sleep(0.05)
        late["doorbell"] = store_messages(store, ["m.two.6"], start_ms=now_ms())[0]
        return invocation(store, sender).answer([late["doorbell"]])

    results = run_side_by_side(
        lambda: first.answer(list(reversed(doorbells[3:]))),
        lambda: second.answer(doorbells[:3]),
        third,
    )
    # Then nothing failed, every message was answered exactly once, in the order the user sent them, and
    # never two sends of the conversation at once
    assert not any(isinstance(r, Exception) for r in results), results
    assert sender.answered == [*ids, "m.two.6"]
    assert sender.overlaps == 0
    assert claims(table) == dict.fromkeys([*ids, "m.two.6"], "sent")
    # And each outcome was reported by whoever answered it; the others found it answered
    outcomes = Counter(outcome for result in results for outcome in result.values())
    assert outcomes[Outcome.SENT] == 7 and set(outcomes) <= {Outcome.SENT, Outcome.ALREADY_SENT}
    # And the turn was let go, with the cursor on the newest message
    state = state_item(table)
    assert "turn_token" not in state and "turn_until_ms" not in state
    assert state["answered_through"] == event_key(CONVERSATION, "m.two.6", late["doorbell"].timestamp_ms)[1]


def test_a_message_delivered_before_an_earlier_one_waits_for_it(table):
    # Given two messages, the second's doorbell rings first (another shard), while the first is stored
    store = table.store()
    start = now_ms() - 10_000
    doorbells = store_messages(store, ["m.early.0", "m.early.1"], start_ms=start)
    sender = Recorder()
    # When only the second's doorbell rings
    outcomes = invocation(store, sender).answer([doorbells[1]])
    # Then the turn answered the first one before it
    assert sender.answered == ["m.early.0", "m.early.1"]
    assert outcomes == {"m.early.0": Outcome.SENT, "m.early.1": Outcome.SENT}
    # And the first's own doorbell, when it rings at last, sends nothing
    assert invocation(store, sender).answer([doorbells[0]]) == {"m.early.0": Outcome.ALREADY_SENT}
    assert len(sender.sent) == 2


# -- an invocation that died --------------------------------------------------------------------------


@pytest.fixture
def dead_turn(table) -> Iterator[tuple[DynamoStore, int]]:
    """A conversation whose turn an invocation took with a short lease and never ended (it died)."""
    store = table.store()
    until = now_ms() + 1_500
    assert not isinstance(store.take_turn(CONVERSATION, "dead", now_ms=now_ms(), until_ms=until), int)
    yield store, until


def test_a_turn_held_by_a_dead_invocation_is_taken_over_when_its_lease_runs_out(table, dead_turn):
    store, until = dead_turn
    # Given two stored messages
    doorbells = store_messages(store, ["m.dead.0", "m.dead.1"], start_ms=now_ms() - 10_000)
    sender = Recorder()
    # When a doorbell rings while the dead invocation's lease still runs
    outcomes = invocation(store, sender).answer([doorbells[1]])
    # Then it waited for the lease to run out, took the turn over, and answered both in order
    assert outcomes == {"m.dead.0": Outcome.SENT, "m.dead.1": Outcome.SENT}
    assert sender.answered == ["m.dead.0", "m.dead.1"] and sender.sent[0][1] > until
    # And the dead invocation, were it to come back, could not end the new holder's work or move the cursor
    cursor = state_item(table)["answered_through"]
    with pytest.raises(TurnLostError):
        store.end_turn(CONVERSATION, "dead", answered_through="", unread=[])
    assert state_item(table)["answered_through"] == cursor


def test_a_send_cut_off_by_a_dead_invocation_is_never_sent_again_and_is_given_up_after_its_window(table, dead_turn):
    store, until = dead_turn
    # Given the dead invocation had claimed the first message's reply (it may or may not have sent it)
    doorbells = store_messages(store, ["m.cut.0", "m.cut.1"], start_ms=now_ms() - 10_000)
    claimed_at = now_ms()
    assert store.claim_reply(NewClaim(CONVERSATION, "m.cut.0", "meta", "dead-claim", claimed_at)) is None
    sender = Recorder()
    # When the next invocation gets the turn (the confirmation window is short here)
    outcomes = invocation(store, sender, confirm_window_ms=2_000).answer([doorbells[0]])
    # Then the first is awaited as unconfirmed (never sent again) and given up as ambiguous when no echo came
    # within the window from the dead invocation's last write; only then is the second answered
    assert outcomes == {"m.cut.0": Outcome.AMBIGUOUS, "m.cut.1": Outcome.SENT}
    claim = table.find("REPLY#m.cut.0")
    assert claim["state"] == "ambiguous" and claim["confirm_by_ms"] == claimed_at + 2_000
    assert claim["settled_at_ms"] >= claim["confirm_by_ms"]
    assert sender.answered == ["m.cut.1"] and sender.sent[0][1] >= claim["confirm_by_ms"]


def test_a_turn_taken_with_little_time_left_still_sends_once_and_settles_the_claim(table):
    # Given a stored message, and an invocation that gets the turn with just over RESERVE_MS left (it waited
    # for the turn, or for an earlier message's confirmation): its lease reaches its deadline, so a send it
    # starts cannot outlive it
    store = table.store()
    doorbells = store_messages(store, ["m.short.0"], start_ms=now_ms() - 10_000)
    sender = Recorder()
    # When it answers
    outcomes = invocation(store, sender).answer(doorbells, lambda: RESERVE_MS + 500)
    # Then the reply went out once and the claim is settled (never left `claimed`, as a cut-off send is)
    assert outcomes == {"m.short.0": Outcome.SENT} and sender.answered == ["m.short.0"]
    assert table.find("REPLY#m.short.0")["state"] == "sent"
    assert invocation(store, sender).answer(doorbells) == {"m.short.0": Outcome.ALREADY_SENT}
    assert sender.answered == ["m.short.0"]


# -- read receipts with only a watermark --------------------------------------------------------------


def read_receipt(user: str, watermark_ms: int) -> Event:
    return Event(
        provider=Provider.META,
        event_id=f"read-{user}-{watermark_ms}",
        kind=Kind.READ,
        page_id="page",
        user_id=user,
        timestamp_ms=watermark_ms + 1,
        watermark_ms=watermark_ms,
    )


GROUP = UNREAD_LIMIT // 2


def conversation_of(table: Any, user: str, *, read_rounds: int) -> tuple[list[str], list[str], int]:
    """A conversation whose user read along (`read_rounds` rounds of 20 answered messages, each then read),
    then GROUP more answered messages, a moment, GROUP more (both groups fit the unread list). Returns the two
    last groups' outbound ids and a watermark between them."""
    store = table.store()
    sender = Recorder()
    pipeline = invocation(store, sender)
    start = now_ms() - 60_000
    sent_before = 0

    def answer_round(count: int) -> list[str]:
        nonlocal start, sent_before
        ids = [f"m.{user}.{sent_before + n}" for n in range(count)]
        doorbells = store_messages(store, ids, start_ms=start, user=user)
        start += count
        assert set(pipeline.answer([doorbells[-1]]).values()) == {Outcome.SENT}
        outbound = [f"m_out_{n}" for n in range(len(sender.sent) - count + 1, len(sender.sent) + 1)]
        sent_before += count
        return outbound

    for _ in range(read_rounds):
        answer_round(20)
        time.sleep(0.002)
        assert ingest(store, [read_receipt(user, now_ms())]).stored == 1
        time.sleep(0.002)
    first = answer_round(GROUP)
    time.sleep(0.002)
    watermark = now_ms()
    time.sleep(0.002)
    second = answer_round(GROUP)
    return first, second, watermark


def test_a_watermark_read_receipt_marks_exactly_the_unread_messages_up_to_it_for_the_same_cost_at_any_length(
    table,
):
    # Given a long conversation (186 answered messages, read along the way but for the last 2 x GROUP) and a
    # short one (2 x GROUP answered messages, none read yet)
    long_first, long_second, long_watermark = conversation_of(table, "long", read_rounds=9)
    short_first, short_second, short_watermark = conversation_of(table, "short", read_rounds=0)
    assert (
        len([i for i in table.items() if i["pk"] == "meta#page#long" and i["sk"].startswith("MSG#")])
        == 9 * 20 + 2 * GROUP
    )

    def receipt_cost(user: str, watermark: int) -> dict[str, int]:
        client = CountingClient(table.client)
        assert ingest(DynamoStore(table.name, client=client), [read_receipt(user, watermark)]).stored == 1
        return dict(client.calls)

    # When each user reads up to a moment between their last two groups of 10 replies
    long_cost = receipt_cost("long", long_watermark)
    short_cost = receipt_cost("short", short_watermark)
    # Then exactly the first group is read, the second is not, and everything read before stays read
    for user, first, second in (("long", long_first, long_second), ("short", short_first, short_second)):
        statuses = {
            i["message_id"]: i["status"]
            for i in table.items()
            if i["pk"] == f"meta#page#{user}" and i["sk"].startswith("MSG#")
        }
        assert {statuses[m] for m in first} == {"read"} and {statuses[m] for m in second} == {"sent"}
        assert Counter(statuses.values())["read"] == len(statuses) - len(second)
    # And it cost the same on both: the receipt stored (PutItem), the conversation state read (GetItem), one
    # UpdateItem per message it marked, one for the watermark; no Query, whatever the conversation's length
    assert long_cost == short_cost == {"put_item": 1, "get_item": 1, "update_item": GROUP + 1}


def test_a_read_receipt_that_comes_while_a_turn_is_still_answering_misses_no_reply(table):
    # Given a reply the user has not read yet (answered in an earlier turn)
    store = table.store()
    sender = Recorder()
    start = now_ms() - 10_000
    doorbells = store_messages(store, ["m.race.0"], start_ms=start)
    invocation(store, sender).answer(doorbells)
    # And a turn answering two more messages, during whose second send the user reads everything so far
    doorbells = store_messages(store, ["m.race.1", "m.race.2"], start_ms=start + 1)
    original = sender.post

    def read_during_the_second_send(inbound: InboundMessage, body: dict[str, Any]) -> SendResult:
        if inbound.event_id == "m.race.2":
            time.sleep(0.002)
            assert ingest(store, [read_receipt(USER, now_ms())]).stored == 1
        return original(inbound, body)

    sender.post = read_during_the_second_send  # type: ignore[method-assign]
    invocation(store, sender).answer(doorbells[-1:])
    # When the user reads again after the turn
    time.sleep(0.002)
    assert ingest(store, [read_receipt(USER, now_ms())]).stored == 1
    # Then every reply is read: the one sent in the turn before the first receipt too
    statuses = {i["message_id"]: i["status"] for i in table.items() if i["sk"].startswith("MSG#")}
    assert statuses == {"m_out_1": "read", "m_out_2": "read", "m_out_3": "read"}


class CapacityClient:
    """Wraps the DynamoDB client and sums the capacity units DynamoDB (Local) reports per operation."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.units: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)
        if name not in ("put_item", "update_item", "get_item", "query"):
            return call

        def measured(**kwargs: Any) -> Any:
            try:
                response = call(**kwargs, ReturnConsumedCapacity="TOTAL")
            except ClientError as exc:
                self.units[name] += exc.response.get("ConsumedCapacity", {}).get("CapacityUnits", 1.0)
                raise
            self.units[name] += response["ConsumedCapacity"]["CapacityUnits"]
            return response

        return measured


def capacity_of_one_more_answer(table: Any, user: str, *, unread_before: int) -> dict[str, float]:
    """The capacity units of answering one message in a conversation whose `unread_before` earlier replies
    (ids as long as Vonage's message uuids) were never read."""
    store = table.store()
    sender = Recorder(message_id="aaaaaaaa-0000-4000-8000-{:012d}")
    start = now_ms() - 60_000
    if unread_before:
        earlier = store_messages(store, [f"m.{user}.{n}" for n in range(unread_before)], start_ms=start, user=user)
        assert set(invocation(store, sender).answer(earlier[-1:]).values()) == {Outcome.SENT}
    doorbell = store_messages(store, [f"m.{user}.last"], start_ms=start + unread_before, user=user)
    client = CapacityClient(table.client)
    measured = invocation(DynamoStore(table.name, client=client), sender)
    assert measured.answer(doorbell) == {f"m.{user}.last": Outcome.SENT}
    return dict(client.units)


def test_answering_a_message_costs_bounded_capacity_however_many_replies_went_unread(table):
    # Given a fresh conversation, and two whose users never read 40 and 150 replies (many Messenger users
    # never open the thread)
    fresh = capacity_of_one_more_answer(table, "fresh", unread_before=0)
    some = capacity_of_one_more_answer(table, "some", unread_before=40)
    many = capacity_of_one_more_answer(table, "many", unread_before=150)
    # Then answering one more message costs 1 unit per write and 1 for the Query when nothing is unread
    assert fresh == {"update_item": 4.0, "query": 1.0, "put_item": 1.0}
    # And the unread list (the newest UNREAD_LIMIT) caps what the turn's two writes of the conversation state
    # cost: the same for 40 or 150 unread replies, at most 2 more units each
    assert many == some and many["update_item"] <= fresh["update_item"] + 2 * 2
