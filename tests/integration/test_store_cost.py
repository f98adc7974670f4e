"""What an answered message costs in table calls, counted on DynamoDB Local by wrapping the client."""

from __future__ import annotations

import pytest

from bench.common import CountingClient
from messenger.messages import InboundMessage, OutgoingMessage
from messenger.reply.ledger import ReplyLedger
from messenger.reply.pipeline import Outcome, ReplyPipeline
from messenger.reply.records import inbound_from_record
from messenger.reply.stats import ReplyStats
from messenger.storage import DynamoStore
from tests.helpers import inbound_event, stream_record
from tests.unit.test_reply_pipeline import NOW_MS, FakeSender, Fixed

pytestmark = pytest.mark.integration


@pytest.fixture
def counted(table) -> tuple[ReplyPipeline, CountingClient, FakeSender]:
    client = CountingClient(table.client)
    sender = FakeSender()
    pipeline = ReplyPipeline(
        ledger=ReplyLedger(DynamoStore(table.name, client=client), clock=lambda: NOW_MS / 1000),
        responder=Fixed("hello"),
        senders={"meta": sender},
        clock=lambda: NOW_MS / 1000,
        stats=ReplyStats(),
    )
    return pipeline, client, sender


class Echo:
    """Answers each message with its own text, so the order of the sends shows the order of the answers."""

    def respond(self, message: InboundMessage) -> list[OutgoingMessage]:
        return [OutgoingMessage(text=message.text)]


def stored_inbound(table, event_id: str, *, ts: int = NOW_MS, text: str = "hello") -> InboundMessage:
    """An inbound message stored by the webhook, and the doorbell (stream record) its write rings."""
    event = inbound_event(event_id, "u1", ts=ts, text=text)
    assert table.store().store_event(event)
    inbound = inbound_from_record(stream_record(event, 1))
    assert inbound is not None
    return inbound


def test_an_answered_single_part_message_costs_five_writes_and_one_read(table, counted):
    pipeline, client, sender = counted
    # Given a new inbound message, stored, as the stream delivers it
    inbound = stored_inbound(table, "m.cost.1")
    # When it is answered
    assert pipeline.handle(inbound) == Outcome.SENT and len(sender.posted) == 1
    # Then the table saw: take the turn (it also returns the pause and the cursor), the pending messages
    # (Query), the claim (PutItem), the outbound message, the settle, end the turn (UpdateItems)
    assert dict(client.calls) == {"update_item": 4, "query": 1, "put_item": 1}
    assert (client.writes, client.reads) == (5, 1)


def test_a_redelivered_record_costs_the_turn_an_empty_query_and_a_failed_claim_and_sends_nothing(table, counted):
    pipeline, client, sender = counted
    inbound = stored_inbound(table, "m.cost.2")
    pipeline.handle(inbound)
    client.reset()
    # When the stream delivers the same record again
    assert pipeline.handle(inbound) == Outcome.ALREADY_SENT
    # Then: take and end the turn, a Query that finds nothing after the cursor, and the doorbell's own
    # message claimed once more (its failed put returns the settled claim: it might have been stored behind
    # the cursor); no read of the claim, no send
    assert dict(client.calls) == {"update_item": 2, "query": 1, "put_item": 1} and len(sender.posted) == 1


def test_one_turn_answers_every_pending_message_for_three_writes_each_plus_the_turn(table, counted):
    pipeline, client, sender = counted
    # Given four messages stored while nobody answered, and only the last one's doorbell
    inbounds = [stored_inbound(table, f"m.cost.b{i}", ts=NOW_MS + i, text=f"text {i}") for i in range(4)]
    pipeline.responder = Echo()
    # When it rings
    outcomes = pipeline.answer([inbounds[-1]])
    # Then the turn answered all four in order, and the turn itself (take, Query, end) was paid once
    assert outcomes == {f"m.cost.b{i}": Outcome.SENT for i in range(4)}
    assert [body["text"] for body in sender.posted] == [f"text {i}" for i in range(4)]
    assert dict(client.calls) == {"update_item": 2 + 2 * 4, "query": 1, "put_item": 4}
    assert (client.writes, client.reads) == (2 + 3 * 4, 1)


def test_storing_a_provider_event_is_one_write(table):
    client = CountingClient(table.client)
    store = DynamoStore(table.name, client=client)
    assert store.store_event(inbound_event("m.cost.3", "u1")) and not store.store_event(inbound_event("m.cost.3", "u1"))
    assert dict(client.calls) == {"put_item": 2}
