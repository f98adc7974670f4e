"""The local stream poller against DynamoDB Local, with a stub reply handler: the ESM semantics of template.yaml."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from local.poller import RECORD_AGE_EXCEEDED, RETRY_EXHAUSTED, CheckpointStore, StreamPoller
from local.services import client
from local.template import stream_settings
from tests.conftest import Table
from tools.streams import StreamReader

pytestmark = pytest.mark.integration


class Stub:
    """A reply handler double: records each batch's keys and answers with `behaviour(keys)`."""

    def __init__(self, behaviour: Callable[[list[str]], Any] | None = None) -> None:
        self.behaviour = behaviour or (lambda keys: {"batchItemFailures": []})
        self.batches: list[list[str]] = []
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> Any:
        keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        self.batches.append(keys)
        self.events.append(event)
        return self.behaviour(keys)

    @property
    def invoked(self) -> list[str]:
        return [k for batch in self.batches for k in batch]


def failure_for(event: dict[str, Any], key: str) -> dict[str, Any]:
    seq = next(r["dynamodb"]["SequenceNumber"] for r in event["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] == key)
    return {"batchItemFailures": [{"itemIdentifier": seq}]}


@pytest.fixture
def streams(dynamodb_endpoint: str) -> Any:
    return client("dynamodbstreams", dynamodb_endpoint)


@pytest.fixture
def queue(moto_endpoint: str) -> tuple[Any, str]:
    sqs = client("sqs", moto_endpoint)
    return sqs, sqs.create_queue(QueueName=f"failures-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def put(table: Table, key: str, record_type: str = "inbound") -> None:
    item = {"pk": {"S": key}, "sk": {"S": "EVT#1"}, "record_type": {"S": record_type}}
    table.client.put_item(TableName=table.name, Item=item)


def put_many(table: Table, count: int, prefix: str = "k") -> list[str]:
    keys = [f"{prefix}{i:03d}" for i in range(count)]
    for key in keys:
        put(table, key)
    return keys


def make_poller(
    table: Table,
    streams: Any,
    handler: Callable[[dict[str, Any]], Any],
    *,
    checkpoints: CheckpointStore | None = None,
    failures: list[dict[str, Any]] | None = None,
    clock: Callable[[], float] = time.time,
    **overrides: Any,
) -> StreamPoller:
    # One lane unless a test asks for more: the batch-level rules are easiest to see on a single lane.
    settings = replace(stream_settings(), **{"batching_window_s": 0, "parallelization_factor": 1, **overrides})
    checkpoints = checkpoints or CheckpointStore(table.stream_arn)
    reader = StreamReader(streams, table.stream_arn, settings.starting_position, positions=checkpoints.get())
    sink = failures.append if failures is not None else None
    return StreamPoller(
        reader,
        handler,
        settings,
        checkpoints,
        on_failure=sink,
        retry_delay_s=0,
        poll_interval_s=0.05,
        clock=clock,
        log=lambda _: None,
    )


def test_batches_respect_the_templates_batch_size_in_stream_order(table: Table, streams: Any) -> None:
    # Given 30 new inbound items (the template's BatchSize is 25)
    keys = put_many(table, 30)
    stub = Stub()
    # When the poller drains the stream
    make_poller(table, streams, stub).drain()
    # Then each key was invoked once, in order, in batches of at most 25
    assert stub.invoked == keys
    assert max(len(b) for b in stub.batches) == 25
    record = stub.events[0]["Records"][0]
    assert record["eventSource"] == "aws:dynamodb" and record["eventName"] == "INSERT"
    assert record["eventSourceARN"] == table.stream_arn and "_shard" not in record


def test_batching_window_waits_for_more_records(table: Table, streams: Any) -> None:
    stub = Stub()
    poller = make_poller(table, streams, stub, batching_window_s=0.6)
    put(table, "w1")
    poller.run_once()
    assert stub.batches == [], "a partial batch waits for the window"
    put(table, "w2")
    time.sleep(0.7)
    poller.run_once()
    assert stub.batches == [["w1", "w2"]]


def test_records_the_filter_rejects_are_dropped_and_checkpointed(table: Table, streams: Any) -> None:
    # Given an inbound insert among echoes, events, an update and a delete
    put(table, "in1")
    put(table, "echo1", "echo")
    put(table, "ev1", "event")
    table.client.put_item(
        TableName=table.name,
        Item={
            "pk": {"S": "in1"},
            "sk": {"S": "EVT#1"},  # a MODIFY
            "record_type": {"S": "inbound"},
            "x": {"S": "y"},
        },
    )
    table.client.delete_item(TableName=table.name, Key={"pk": {"S": "ev1"}, "sk": {"S": "EVT#1"}})
    put(table, "in2")
    stub = Stub()
    poller = make_poller(table, streams, stub)
    # When drained
    poller.drain()
    # Then only the inbound inserts reached the function, and the shard is checkpointed past everything
    assert stub.invoked == ["in1", "in2"]
    assert poller.stats.filtered == 4
    last_seq = stub.events[-1]["Records"][-1]["dynamodb"]["SequenceNumber"]
    assert list(poller.checkpoints.get().values()) == [last_seq]


def test_partial_failure_checkpoints_before_and_retries_from_the_failed_record(table: Table, streams: Any) -> None:
    keys = put_many(table, 5)
    answers = iter(["fail-k002", "ok"])

    def behaviour(batch: list[str]) -> Any:
        return failure_for(stub.events[-1], "k002") if next(answers) == "fail-k002" else None

    stub = Stub(behaviour)
    poller = make_poller(table, streams, stub)
    poller.drain()
    assert stub.batches == [keys, keys[2:]]
    assert poller.stats.partial_failures == 1 and poller.stats.retries == 1


def test_several_reported_failures_retry_from_the_lowest_sequence_number(table: Table, streams: Any) -> None:
    keys = put_many(table, 4)
    calls = {"n": 0}

    def behaviour(batch: list[str]) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            event = stub.events[-1]
            return {
                "batchItemFailures": failure_for(event, "k003")["batchItemFailures"]
                + failure_for(event, "k001")["batchItemFailures"]
            }
        return {"batchItemFailures": []}

    stub = Stub(behaviour)
    make_poller(table, streams, stub).drain()
    assert stub.batches == [keys, keys[1:]]


def test_function_errors_bisect_until_the_poison_record_exhausts_its_retries(
    table: Table, streams: Any, queue: tuple[Any, str]
) -> None:
    # Given a batch with one record that always makes the function raise, and a real SQS destination
    sqs, queue_url = queue
    keys = put_many(table, 8)

    def behaviour(batch: list[str]) -> Any:
        if "k005" in batch:
            raise RuntimeError("poison")
        return {"batchItemFailures": []}

    stub = Stub(behaviour)
    settings = {"maximum_retry_attempts": 2, "parallelization_factor": 1}
    checkpoints = CheckpointStore(table.stream_arn)
    reader = StreamReader(streams, table.stream_arn, "TRIM_HORIZON")
    poller = StreamPoller(
        reader,
        stub,
        replace(stream_settings(), batching_window_s=0, **settings),
        checkpoints,
        on_failure=lambda m: sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(m)),
        retry_delay_s=0,
        log=lambda _: None,
    )
    # When drained
    poller.drain()
    # Then the batch was split (8 -> 4+4 -> 2+2 -> 1+1) and the good records finished, in order
    assert stub.batches[:3] == [keys, keys[:4], keys[4:]]
    finished = [k for b in stub.batches if "k005" not in b for k in b]
    assert finished == [k for k in keys if k != "k005"]
    # And the poison record alone was invoked 1 + 2 retries times, then sent to the queue
    assert stub.batches.count(["k005"]) == 3
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    info = body["DDBStreamBatchInfo"]
    poison = next(r for e in stub.events for r in e["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] == "k005")
    assert info["batchSize"] == 1
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == poison["dynamodb"]["SequenceNumber"]
    assert info["streamArn"] == table.stream_arn and info["shardId"]
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert body["requestContext"]["condition"] == RETRY_EXHAUSTED
    assert body["requestContext"]["approximateInvokeCount"] == 3
    assert body["responseContext"]["functionError"] == "Unhandled"
    assert body["version"] == "1.0"
    # And the shard moved on past everything
    last = stub.events[-1]["Records"][-1]["dynamodb"]["SequenceNumber"]
    assert int(next(iter(checkpoints.get().values()))) >= int(last)


def test_without_bisect_the_whole_batch_is_retried_then_given_up(table: Table, streams: Any) -> None:
    put_many(table, 3)
    failures: list[dict[str, Any]] = []
    stub = Stub(lambda batch: (_ for _ in ()).throw(ValueError("down")))
    make_poller(table, streams, stub, failures=failures, bisect_on_error=False, maximum_retry_attempts=1).drain()
    assert len(stub.batches) == 2 and all(len(b) == 3 for b in stub.batches)
    assert [f["DDBStreamBatchInfo"]["batchSize"] for f in failures] == [3]
    assert failures[0]["requestContext"]["approximateInvokeCount"] == 2


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": "0"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"wrong": "key"}]},
        {"batchItemFailures": "nope"},
        "not an object",
    ],
)
def test_invalid_partial_responses_are_function_errors(table: Table, streams: Any, response: Any) -> None:
    put_many(table, 2)
    answers = iter([response])
    stub = Stub(lambda batch: next(answers, None))
    poller = make_poller(table, streams, stub)
    poller.drain()
    assert poller.stats.function_errors == 1
    assert stub.batches[1:] == [["k000"], ["k001"]], "bisected after the invalid response"


def test_partial_failures_exhaust_retries_to_the_on_failure_destination(table: Table, streams: Any) -> None:
    keys = put_many(table, 3)
    failures: list[dict[str, Any]] = []
    stub = Stub(lambda batch: failure_for(stub.events[-1], "k001"))
    make_poller(table, streams, stub, failures=failures, maximum_retry_attempts=2).drain()
    assert stub.batches == [keys, keys[1:], keys[1:]]
    assert len(failures) == 1
    info = failures[0]["DDBStreamBatchInfo"]
    assert info["batchSize"] == 2
    assert failures[0]["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}


def test_records_older_than_the_maximum_age_are_not_invoked(table: Table, streams: Any) -> None:
    # Given records written "two hours ago" (the template allows 3600 s)
    put_many(table, 3)
    failures: list[dict[str, Any]] = []
    stub = Stub()
    # When the poller runs with a clock two hours ahead
    make_poller(table, streams, stub, failures=failures, clock=lambda: time.time() + 7200).drain()
    # Then nothing was invoked and the records went to the destination
    assert stub.batches == []
    assert [f["requestContext"]["condition"] for f in failures] == [RECORD_AGE_EXCEEDED]
    assert failures[0]["DDBStreamBatchInfo"]["batchSize"] == 3
    assert failures[0]["requestContext"]["approximateInvokeCount"] == 0


def test_per_shard_order_holds_across_failures(table: Table, streams: Any) -> None:
    keys = put_many(table, 9)
    done: list[str] = []
    failed_once: set[str] = set()

    def behaviour(batch: list[str]) -> Any:
        for key in batch:
            if key in ("k004", "k007") and key not in failed_once:
                failed_once.add(key)
                return failure_for(stub.events[-1], key)
            done.append(key)
        return None

    stub = Stub(behaviour)
    make_poller(table, streams, stub, batch_size=3).drain()
    assert done == keys


def test_a_restarted_poller_resumes_from_the_saved_checkpoint(table: Table, streams: Any, tmp_path: Path) -> None:
    # Given a poller that finished 5 records and saved its checkpoint to a file
    path = tmp_path / "checkpoints.json"
    first_keys = put_many(table, 5, "a")
    first = Stub()
    make_poller(table, streams, first, checkpoints=CheckpointStore(table.stream_arn, path)).drain()
    # When more records arrive and a new poller (new process: checkpoints read from the file) starts
    second_keys = put_many(table, 4, "b")
    second = Stub()
    make_poller(table, streams, second, checkpoints=CheckpointStore(table.stream_arn, path)).drain()
    # Then it invokes only the new records
    assert first.invoked == first_keys
    assert second.invoked == second_keys
    # And a checkpoint file of another stream (an older in-memory table) is ignored
    assert CheckpointStore("arn:other", path).get() == {}


def test_stopping_mid_stream_loses_nothing_and_repeats_nothing(table: Table, streams: Any) -> None:
    # Given a slow handler working through 40 records in batches of 5 on a thread
    keys = put_many(table, 40)
    finished: list[str] = []
    lock = threading.Lock()

    def slow(event: dict[str, Any]) -> Any:
        time.sleep(0.05)
        with lock:
            finished.extend(r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"])
        return None

    checkpoints = CheckpointStore(table.stream_arn)
    poller = make_poller(table, streams, slow, checkpoints=checkpoints, batch_size=5)
    poller.start()
    deadline = time.monotonic() + 10
    while len(finished) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    # When it is stopped part-way and a new poller starts from the same checkpoints
    poller.stop()
    assert 10 <= len(finished) < 40
    make_poller(table, streams, slow, checkpoints=checkpoints, batch_size=5).drain()
    # Then every record was finished exactly once, in order
    assert finished == keys


# -- ParallelizationFactor: lanes by partition key ----------------------------------------------------


def put_conversations(table: Table, conversations: int, per_conversation: int) -> list[tuple[str, str]]:
    """Items of several conversations, interleaved as quick messages would be: (pk, sk) in write order."""
    written = []
    for n in range(per_conversation):
        for c in range(conversations):
            key = (f"conv{c:02d}", f"EVT#{n}")
            table.client.put_item(
                TableName=table.name, Item={"pk": {"S": key[0]}, "sk": {"S": key[1]}, "record_type": {"S": "inbound"}}
            )
            written.append(key)
    return written


class LaneStub:
    """Records each invocation's keys, how many ran at once, and answers after a random short delay."""

    def __init__(self, fail: Callable[[tuple[str, str]], bool] = lambda key: False) -> None:
        self.fail = fail
        self.lock = threading.Lock()
        self.done: list[tuple[str, str]] = []
        self.running = 0
        self.max_running = 0
        self.batches = 0

    def __call__(self, event: dict[str, Any]) -> Any:
        with self.lock:
            self.running += 1
            self.batches += 1
            self.max_running = max(self.max_running, self.running)
        try:
            time.sleep(random.uniform(0, 0.03))
            for record in event["Records"]:
                keys = record["dynamodb"]["Keys"]
                key = (keys["pk"]["S"], keys["sk"]["S"])
                if self.fail(key):
                    return {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
                with self.lock:
                    self.done.append(key)
            return None
        finally:
            with self.lock:
                self.running -= 1


def test_lanes_run_batches_of_one_shard_concurrently_and_keep_each_key_in_order(table: Table, streams: Any):
    # Given 12 conversations of 6 quick messages each, and 4 lanes with batches of 3
    written = put_conversations(table, 12, 6)
    stub = LaneStub()
    poller = make_poller(table, streams, stub, parallelization_factor=4, batch_size=3)
    # When drained
    poller.drain(timeout=60)
    # Then every record was finished once, several batches ran at once, each conversation in write order
    assert sorted(stub.done) == sorted(written)
    assert stub.max_running > 1 and stub.batches >= 24
    for conversation in {pk for pk, _ in written}:
        assert [k for k in stub.done if k[0] == conversation] == [k for k in written if k[0] == conversation]
    # And the lane of a key never changes, and the shard is checkpointed after the last record
    assert {poller.lane_of({"dynamodb": {"Keys": {"pk": {"S": "conv03"}}}}) for _ in range(3)} == {
        poller.lane_of({"dynamodb": {"Keys": {"pk": {"S": "conv03"}, "sk": {"S": "EVT#9"}}}})
    }
    assert poller.idle and len(poller.checkpoints.get()) == 1


def test_a_failing_key_holds_back_only_its_own_lane(table: Table, streams: Any):
    # Given conv00's second message fails twice before it succeeds
    written = put_conversations(table, 8, 3)
    failures: list[tuple[str, str]] = []

    def fail(key: tuple[str, str]) -> bool:
        if key == ("conv00", "EVT#1") and failures.count(key) < 2:
            failures.append(key)
            return True
        return False

    stub = LaneStub(fail)
    poller = make_poller(table, streams, stub, parallelization_factor=4, batch_size=2)
    poller.retry_delay_s = 0.3
    # When drained
    poller.drain(timeout=60)
    # Then conv00 stayed in order, its later message was held back behind the retried one
    assert [k for k in stub.done if k[0] == "conv00"] == [("conv00", f"EVT#{n}") for n in range(3)]
    # And conversations in other lanes finished while conv00 waited for its retries
    others = {
        pk
        for pk, _ in written
        if poller.lane_of({"dynamodb": {"Keys": {"pk": {"S": pk}}}})
        != poller.lane_of({"dynamodb": {"Keys": {"pk": {"S": "conv00"}}}})
    }
    assert others
    first_conv00_retry_done = stub.done.index(("conv00", "EVT#1"))
    assert all(key in stub.done[:first_conv00_retry_done] for key in written if key[0] in others)
    assert sorted(stub.done) == sorted(written) and poller.stats.retries == 2
