"""The batch processor: ordering, concurrency, partial failures, and each stream record decoded once."""

from __future__ import annotations

import threading
import time
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response

from messenger.errors import RetryLaterError
from messenger.reply.batch import ConversationOrderedProcessor
from messenger.reply.records import ReplyRecord, decode, inbound_from_record
from tests.helpers import inbound_event, inbound_record, stream_record

record = inbound_record


class Context:
    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_conversations_in_order_and_in_parallel():
    # Given 3 conversations of 3 records each, interleaved, and a handler that takes 50 ms
    records = [record(i, f"u{i % 3}") for i in range(9)]
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()

    def handler(record: ReplyRecord, lambda_context: Any) -> None:
        time.sleep(0.05)
        with lock:
            seen.setdefault(record.inbound.user_id, []).append(int(record.sequence_number))

    processor = ConversationOrderedProcessor(max_workers=8, finish=None)
    # When processed
    started = time.perf_counter()
    result = process_partial_response({"Records": records}, handler, processor, Context())
    elapsed = time.perf_counter() - started
    # Then each conversation was handled in stream order, the three side by side
    assert result == {"batchItemFailures": []}
    assert seen == {"u0": [0, 3, 6], "u1": [1, 4, 7], "u2": [2, 5, 8]}
    assert elapsed < 0.4


def test_failure_blocks_the_conversation_rest_only():
    # Given user a's second record fails
    records = [record(1, "a"), record(2, "b"), record(3, "a"), record(4, "a"), record(5, "b")]
    handled: list[int] = []

    def handler(record: ReplyRecord, lambda_context: Any) -> None:
        seq = int(record.sequence_number)
        handled.append(seq)
        if seq == 3:
            raise RetryLaterError("boom")

    processor = ConversationOrderedProcessor(finish=None)
    # When processed
    result = process_partial_response({"Records": records}, handler, processor)
    # Then the failed record and a's later one are reported, the later one never attempted
    assert [int(f["itemIdentifier"]) for f in result["batchItemFailures"]] == [3, 4]
    assert sorted(handled) == [1, 2, 3, 5]


def test_entire_batch_failure_is_a_response_not_an_exception():
    def handler(record: ReplyRecord, lambda_context: Any) -> None:
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
    # Then the handler got the decoded message (None for the item we do not answer) and the context
    assert result == {"batchItemFailures": []}
    assert [(r.raw, r.inbound.text if r.inbound else None, c) for r, c in seen] == [
        (records[0], "hi there", context),
        (records[1], None, context),
    ]
    assert decode(records[0]) == seen[0][0]


def test_an_inbound_item_of_a_kind_we_do_not_answer_is_not_decoded_as_a_message():
    # The one answerable rule (models.answerable) also guards the reply side, whatever the item says
    reaction = stream_record(inbound_event("m.r", "a"), 1, kind="reaction")
    assert decode(reaction).inbound is None
    assert inbound_from_record(stream_record(inbound_event("m.p", "a"), 2, kind="postback")) is not None
