"""The batch processor: ordering, concurrency, partial failures, and each stream record decoded once."""

from __future__ import annotations

import threading
import time
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response

from devkit.memory_store import MemoryStore
from messenger.errors import RetryLaterError
from messenger.reply.batch import ConversationOrderedProcessor
from messenger.reply.records import ReplyRecord, decode, inbound_from_item, inbound_from_record
from tests.helpers import inbound_event, inbound_record, stream_record

record = inbound_record


class Context:
    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_one_call_per_conversation_and_conversations_in_parallel():
    # Given 3 conversations of 3 records each, interleaved, and a handler that takes 50 ms per call
    records = [record(i, f"u{i % 3}") for i in range(9)]
    seen: dict[str, list[list[int]]] = {}
    lock = threading.Lock()

    def handler(records: list[ReplyRecord], lambda_context: Any) -> None:
        time.sleep(0.05)
        with lock:
            seen.setdefault(records[0].inbound.user_id, []).append([int(r.sequence_number) for r in records])

    processor = ConversationOrderedProcessor(max_workers=8, finish=None)
    # When processed
    started = time.perf_counter()
    result = process_partial_response({"Records": records}, handler, processor, Context())
    elapsed = time.perf_counter() - started
    # Then each conversation was handled by one call with its records, the three side by side
    assert result == {"batchItemFailures": []}
    assert seen == {"u0": [[0, 3, 6]], "u1": [[1, 4, 7]], "u2": [[2, 5, 8]]}
    assert elapsed < 0.14


def test_a_blocked_conversation_reports_all_its_records_and_only_its_own():
    # Given user a's conversation is blocked (its handler call raises)
    records = [record(1, "a"), record(2, "b"), record(3, "a"), record(4, "a"), record(5, "b")]
    handled: list[list[int]] = []

    def handler(records: list[ReplyRecord], lambda_context: Any) -> None:
        handled.append([int(r.sequence_number) for r in records])
        if records[0].inbound.user_id == "a":
            raise RetryLaterError("boom")

    processor = ConversationOrderedProcessor(finish=None)
    # When processed
    result = process_partial_response({"Records": records}, handler, processor)
    # Then every record of a is reported (delivered again), none of b's
    assert [int(f["itemIdentifier"]) for f in result["batchItemFailures"]] == [1, 3, 4]
    assert sorted(handled) == [[1, 3, 4], [2, 5]]


def test_entire_batch_failure_is_a_response_not_an_exception():
    def handler(records: list[ReplyRecord], lambda_context: Any) -> None:
        raise RetryLaterError("down")

    result = process_partial_response(
        {"Records": [record(1, "a"), record(2, "b")]}, handler, ConversationOrderedProcessor(finish=None)
    )
    assert len(result["batchItemFailures"]) == 2


def test_no_record_started_when_time_is_short():
    calls: list[Any] = []
    processor = ConversationOrderedProcessor(min_remaining_ms=5_000, finish=None)
    result = process_partial_response(
        {"Records": [record(1, "a")]}, lambda r, c: calls.append(r), processor, Context(remaining_ms=1_000)
    )
    assert calls == [] and len(result["batchItemFailures"]) == 1


def test_only_inserts_of_inbound_items_are_answered():
    assert inbound_from_record(record(1, "a")) is not None
    assert inbound_from_record(record(1, "a", name="MODIFY")) is None
    assert inbound_from_record(record(1, "a", name="REMOVE")) is None
    for record_type in ("echo", "event", "outbound", "reply"):
        assert inbound_from_record(record(1, "a", record_type=record_type)) is None


def test_the_handler_gets_each_record_decoded_once_with_the_context():
    # Given an inbound message and an outbound item in one batch, and a context
    records = [record(1, "a", text="hi there"), record(2, "a", record_type="outbound")]
    context = Context()
    seen: list[tuple[ReplyRecord, Any]] = []
    # When processed
    result = process_partial_response(
        {"Records": records}, lambda r, c: seen.append((r, c)), ConversationOrderedProcessor(finish=None), context
    )
    # Then the handler got the decoded messages (None for the item we do not answer) and the context
    assert result == {"batchItemFailures": []}
    ((got, got_context),) = seen
    assert got_context is context
    assert [(r.raw, r.inbound.text if r.inbound else None) for r in got] == [
        (records[0], "hi there"),
        (records[1], None),
    ]
    assert decode(records[0]) == got[0]


def test_an_inbound_item_of_a_kind_we_do_not_answer_is_not_decoded_as_a_message():
    # The one answerable rule (events.answerable) also guards the reply side, whatever the item says
    reaction = stream_record(inbound_event("m.r", "a"), 1, kind="reaction")
    assert decode(reaction).inbound is None
    assert inbound_from_record(stream_record(inbound_event("m.p", "a"), 2, kind="postback")) is not None


def test_a_stream_record_and_the_stored_item_decode_to_the_same_message():
    # Given a message stored as the webhook stores it, and the stream record of that write
    event = inbound_event("m.same", "a", text="same")
    store = MemoryStore()
    assert store.store_event(event)
    (item,) = store.pending_messages(event.conversation_id, "")
    # When both are decoded (the doorbell, and the turn's read of the conversation's pending messages)
    from_record = inbound_from_record(stream_record(event, 1))
    from_item = inbound_from_item(item)
    # Then it is one message, with its conversation and its place in the conversation's order
    assert from_record is not None and from_record == from_item
    assert (from_record.conversation_id, from_record.event_key) == (item["pk"], item["sk"])


def test_an_inbound_item_without_the_fields_a_reply_needs_is_skipped_not_raised():
    event = inbound_event("m.broken", "a")
    store = MemoryStore()
    assert store.store_event(event)
    (item,) = store.pending_messages(event.conversation_id, "")
    assert inbound_from_item({k: v for k, v in item.items() if k != "user_id"}) is None
    assert inbound_from_item({**item, "timestamp_ms": "soon"}) is None
    assert inbound_from_item({**item, "sk": "MSG#m.broken"}) is None  # not an event item
