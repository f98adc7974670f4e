"""What an answered message costs in table calls, counted on DynamoDB Local by wrapping the client."""

from __future__ import annotations

import pytest

from bench.common import CountingClient
from messenger.outbox import ReplyLedger
from messenger.reply.pipeline import ReplyPipeline
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


def test_an_answered_single_part_message_costs_three_writes_and_one_read(counted):
    pipeline, client, sender = counted
    # Given a new inbound message as the stream delivers it
    inbound = inbound_from_record(stream_record(inbound_event("m.cost.1", "u1", ts=NOW_MS), 1))
    # When it is answered
    assert pipeline.handle(inbound) == "sent" and len(sender.posted) == 1
    # Then the table saw the claim, the outbound message and the settle (writes), and the pause check (read)
    assert dict(client.calls) == {"put_item": 1, "get_item": 1, "update_item": 2}
    assert (client.writes, client.reads) == (3, 1)


def test_a_redelivered_record_costs_one_failed_conditional_write_and_sends_nothing(counted):
    pipeline, client, sender = counted
    inbound = inbound_from_record(stream_record(inbound_event("m.cost.2", "u1", ts=NOW_MS), 1))
    pipeline.handle(inbound)
    client.reset()
    # When the stream delivers the same record again
    assert pipeline.handle(inbound) == "already_sent"
    # Then the claim's failed put returned the settled claim itself: no read, no send
    assert dict(client.calls) == {"put_item": 1} and len(sender.posted) == 1


def test_storing_a_provider_event_is_one_write(table):
    client = CountingClient(table.client)
    store = DynamoStore(table.name, client=client)
    assert store.store_event(inbound_event("m.cost.3", "u1")) and not store.store_event(inbound_event("m.cost.3", "u1"))
    assert dict(client.calls) == {"put_item": 2}
