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

from devkit.local_aws import client
from devkit.streams import StreamReader
from local.poller import RECORD_AGE_EXCEEDED, RETRY_EXHAUSTED, CheckpointStore, StreamPoller, seq
from local.template import stream_settings
from tests.conftest import Table

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


# -- ParallelizationFactor: lanes by full item key; split shards; delivery order ------------------------------


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


def update(table: Table, key: tuple[str, str], version: int) -> None:
    """A MODIFY record of the item: its `version` attribute set."""
    table.client.update_item(
        TableName=table.name,
        Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}},
        UpdateExpression="SET version = :v",
        ExpressionAttributeValues={":v": {"N": str(version)}},
    )


def record_key(record: dict[str, Any]) -> tuple[str, str]:
    keys = record["dynamodb"]["Keys"]
    return keys["pk"]["S"], keys["sk"]["S"]


def keyed(pk: str, sk: str) -> dict[str, Any]:
    """A record with just its keys, to ask the poller where it goes."""
    return {"dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}}}


class LaneStub:
    """Records each record it finishes (key, version), how many batches ran at once, and answers after a random
    short delay; `delay(lane)` overrides the delay per lane (`for_lane` gives each lane its own view)."""

    def __init__(
        self,
        fail: Callable[[tuple[str, str]], bool] = lambda key: False,
        delay: Callable[[int], float] = lambda lane: random.uniform(0, 0.03),
    ) -> None:
        self.fail = fail
        self.delay = delay
        self.lock = threading.Lock()
        self.done: list[tuple[str, str]] = []
        self.versions: list[tuple[tuple[str, str], int]] = []
        self.lanes: dict[tuple[str, str], set[int]] = {}  # the lanes each item's records were invoked in
        self.running = 0
        self.max_running = 0
        self.batches = 0

    def for_lane(self, lane: int) -> Callable[[dict[str, Any]], Any]:
        return lambda event: self.invoke(event, lane)

    def __call__(self, event: dict[str, Any]) -> Any:
        return self.invoke(event, 0)

    def invoke(self, event: dict[str, Any], lane: int) -> Any:
        with self.lock:
            self.running += 1
            self.batches += 1
            self.max_running = max(self.max_running, self.running)
        try:
            time.sleep(self.delay(lane))
            for record in event["Records"]:
                key = record_key(record)
                if self.fail(key):
                    return {"batchItemFailures": [{"itemIdentifier": record["dynamodb"]["SequenceNumber"]}]}
                with self.lock:
                    self.done.append(key)
                    self.lanes.setdefault(key, set()).add(lane)
                    self.versions.append(
                        (key, int((record["dynamodb"].get("NewImage") or {}).get("version", {"N": 0})["N"]))
                    )
            return None
        finally:
            with self.lock:
                self.running -= 1


def lane_poller(table: Table, streams: Any, stub: LaneStub, **overrides: Any) -> StreamPoller:
    """A poller whose lanes each call `stub.for_lane(i)`; `split` and `order` go to the poller, the rest to the
    stream settings."""
    options = {name: overrides.pop(name) for name in ("split", "order", "seed", "checkpoints") if name in overrides}
    checkpoints = options.pop("checkpoints", None) or CheckpointStore(table.stream_arn)
    settings = replace(stream_settings(), **{"batching_window_s": 0, **overrides})
    reader = StreamReader(streams, table.stream_arn, settings.starting_position, positions=checkpoints.get())
    return StreamPoller(
        reader,
        stub,
        settings,
        checkpoints,
        lane_invoke=stub.for_lane,
        retry_delay_s=0,
        poll_interval_s=0.05,
        log=lambda _: None,
        **options,
    )


def test_lanes_are_chosen_by_the_full_item_key(table: Table, streams: Any):
    # Given the template's ParallelizationFactor (10)
    poller = lane_poller(table, streams, LaneStub())
    # Then one item always takes one lane, whatever else the record holds
    assert poller.lane_of(keyed("conv03", "EVT#1")) == poller.lane_of(
        {"dynamodb": {"Keys": {"sk": {"S": "EVT#1"}, "pk": {"S": "conv03"}}, "NewImage": {"x": {"S": "y"}}}}
    )
    # And the items of one partition key spread over the lanes (the sort key counts), as do partition keys
    assert len({poller.lane_of(keyed("conv03", f"EVT#{n}")) for n in range(40)}) == 10
    assert len({poller.lane_of(keyed(f"conv{c}", "EVT#1")) for c in range(40)}) == 10
    # And with ParallelizationFactor 1 there is one lane
    assert lane_poller(table, streams, LaneStub(), parallelization_factor=1).lane_of(keyed("a", "b")) == 0


def test_lanes_run_concurrently_and_keep_each_items_records_in_order(table: Table, streams: Any):
    # Given 8 conversations of 4 quick messages each, every message item then updated twice (3 records per item)
    written = put_conversations(table, 8, 4)
    for version in (1, 2):
        for key in written:
            update(table, key, version)
    stub = LaneStub()
    # When 4 lanes with batches of 3 and no filter drain the stream
    poller = lane_poller(table, streams, stub, parallelization_factor=4, batch_size=3, filter_patterns=[])
    poller.drain(timeout=60)
    # Then every record was finished once and several batches ran at once
    assert sorted(stub.versions) == sorted((key, v) for key in written for v in (0, 1, 2))
    assert stub.max_running > 1
    # And each item's records were handled in stream order (insert, then its two updates)
    for key in written:
        assert [v for k, v in stub.versions if k == key] == [0, 1, 2]
    # And each item's records were invoked in its own lane only, and the lanes of one conversation differ
    assert all(stub.lanes[key] == {poller.lane_of(keyed(*key))} for key in written)
    assert len({poller.lane_of(keyed(*key)) for key in written if key[0] == "conv00"}) > 1
    assert poller.idle and len(poller.checkpoints.get()) == 1


def test_two_items_of_one_partition_key_run_side_by_side_and_finish_in_either_order(table: Table, streams: Any):
    # Given two messages of one conversation whose items fall in different lanes, the first one's lane slow
    probe = lane_poller(table, streams, LaneStub(), parallelization_factor=4)
    first = ("conv", "EVT#0")
    second = next(
        ("conv", f"EVT#{n}")
        for n in range(1, 50)
        if probe.lane_of(keyed("conv", f"EVT#{n}")) != probe.lane_of(keyed(*first))
    )
    for key in (first, second):
        table.client.put_item(
            TableName=table.name, Item={"pk": {"S": key[0]}, "sk": {"S": key[1]}, "record_type": {"S": "inbound"}}
        )
    slow_lane = probe.lane_of(keyed(*first))
    stub = LaneStub(delay=lambda lane: 0.4 if lane == slow_lane else 0.1)
    # When drained with 4 lanes
    poller = lane_poller(table, streams, stub, parallelization_factor=4)
    poller.drain(timeout=30)
    # Then both ran at once and the later message finished first: only per-item order is kept
    assert stub.max_running == 2
    assert stub.done == [second, first]
    # And the checkpoint still covers both
    assert poller.idle and len(poller.checkpoints.get()) == 1


def test_a_failing_item_holds_back_only_its_own_lane(table: Table, streams: Any):
    # Given conv00's second message fails twice before it succeeds
    written = put_conversations(table, 8, 3)
    failing = ("conv00", "EVT#1")
    failures: list[tuple[str, str]] = []

    def fail(key: tuple[str, str]) -> bool:
        if key == failing and failures.count(key) < 2:
            failures.append(key)
            return True
        return False

    stub = LaneStub(fail)
    poller = lane_poller(table, streams, stub, parallelization_factor=4, batch_size=2)
    poller.retry_delay_s = 0.3
    # When drained
    poller.drain(timeout=60)
    # Then every record finished once, after two retries
    assert sorted(stub.done) == sorted(written) and poller.stats.retries == 2
    # And the items of every other lane (conv00's own other messages among them) finished while it waited
    lane = poller.lane_of(keyed(*failing))
    others = [key for key in written if poller.lane_of(keyed(*key)) != lane]
    assert others and any(key[0] == "conv00" for key in others)
    retried = stub.done.index(failing)
    assert all(key in stub.done[:retried] for key in others)
    # And in its own lane, the items after it were finished after it
    behind = [key for key in written[written.index(failing) + 1 :] if poller.lane_of(keyed(*key)) == lane]
    assert behind and all(stub.done.index(key) > retried for key in behind)


def test_a_split_shard_reads_its_virtual_children_concurrently(table: Table, streams: Any):
    # Given 6 conversations of 4 messages, each item then updated once
    written = put_conversations(table, 6, 4)
    for key in written:
        update(table, key, 1)
    stub = LaneStub(delay=lambda lane: 0.02)
    # When the one shard is split in two virtual children, one lane each (ParallelizationFactor 1)
    poller = lane_poller(table, streams, stub, split=2, parallelization_factor=1, batch_size=2, filter_patterns=[])
    poller.drain(timeout=60)
    # Then both children ran, at the same time, each with its own lane
    assert {entry["child"] for entry in poller.stats.history} == {0, 1}
    assert {entry["lane"] for entry in poller.stats.history} == {0}
    assert stub.max_running == 2
    # And every item stayed in one child, its records in order, while a conversation spread over both children
    assert all(stub.lanes[key] == {poller.child_of(keyed(*key))} for key in written)
    for key in written:
        assert [v for k, v in stub.versions if k == key] == [0, 1]
    assert all(len({poller.child_of(keyed(*k)) for k in written if k[0] == pk}) == 2 for pk in {"conv00", "conv01"})
    # And the real shard is checkpointed once both children are done
    assert poller.idle and len(poller.checkpoints.get()) == 1


def test_a_split_shard_checkpoints_the_slowest_child_and_a_restart_resumes_there(
    table: Table, streams: Any, tmp_path: Path
):
    # Given 60 messages, and a split shard whose child 1 is slow (child 0 runs well ahead of it)
    written = put_conversations(table, 12, 5)
    path = tmp_path / "checkpoints.json"

    def split_poller(stub: LaneStub) -> StreamPoller:
        checkpoints = CheckpointStore(table.stream_arn, path)  # read from the file, as a new process would
        return lane_poller(
            table, streams, stub, split=2, parallelization_factor=1, batch_size=2, checkpoints=checkpoints
        )

    probe = split_poller(LaneStub())
    stub = LaneStub(delay=lambda lane: 0.15 if lane == 1 else 0.0)
    poller = split_poller(stub)
    poller.start()
    deadline = time.monotonic() + 10
    while len([k for k in stub.done if probe.child_of(keyed(*k)) == 1]) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    # When it is stopped part-way (in-flight batches finish) and a new poller starts from the saved file
    poller.stop()
    before = list(stub.done)
    saved = int(next(iter(CheckpointStore(table.stream_arn, path).get().values())))
    sequence = {record_key(r): seq(r) for r in StreamReader(streams, table.stream_arn, "TRIM_HORIZON").poll()}
    # Then the checkpoint is the minimum over the children: every record up to it was finished, the next was not
    assert 0 < len(before) < len(written)
    finished_at_stop = {sequence[k] for k in before}
    assert all(s in finished_at_stop for s in sequence.values() if s <= saved)
    assert min(s for s in sequence.values() if s > saved) not in finished_at_stop
    # And child 0 had finished records beyond it
    ahead = [k for k in before if sequence[k] > saved]
    assert ahead and all(probe.child_of(keyed(*k)) == 0 for k in ahead)
    resumed = LaneStub()
    split_poller(resumed).drain(timeout=60)
    # And the restart invoked exactly the records after the checkpoint: nothing lost, only those finished
    # beyond it repeated
    assert sorted(resumed.done) == sorted(k for k in written if sequence[k] > saved)
    assert sorted(set(before) | set(resumed.done)) == sorted(written)
    assert sorted(set(before) & set(resumed.done)) == sorted(ahead)


@pytest.mark.parametrize("order", ["newest-first", "shuffle"])
def test_a_delivery_order_reorders_items_but_never_one_items_records(table: Table, streams: Any, order: str):
    # Given 12 messages, each item then updated once (its insert and its update must stay in that order)
    written = put_conversations(table, 3, 4)
    for key in written:
        update(table, key, 1)
    stub = LaneStub(delay=lambda lane: 0.0)
    # When one lane drains the stream in the given order, without a filter
    poller = lane_poller(table, streams, stub, order=order, seed=7, parallelization_factor=1, filter_patterns=[])
    poller.drain(timeout=30)
    # Then items came in another order than the stream's (newest first: exactly reversed) ...
    items = list(dict.fromkeys(stub.done))
    assert sorted(items) == sorted(written) and items != written
    if order == "newest-first":
        assert items == written[::-1]
    # ... each item's records in stream order, and the shard is checkpointed past everything
    for key in written:
        assert [v for k, v in stub.versions if k == key] == [0, 1]
    assert poller.idle and len(poller.checkpoints.get()) == 1
    with pytest.raises(ValueError, match="order must be one of"):
        lane_poller(table, streams, stub, order="backwards")


def test_a_partial_failure_in_a_reordered_batch_retries_from_the_lowest_sequence_number(table: Table, streams: Any):
    # Given 4 messages handed to the function newest first, in one batch: k3, k2, k1, k0
    keys = put_many(table, 4)
    answers = iter(["fail-k001"])
    stub = Stub(lambda batch: failure_for(stub.events[-1], "k001") if next(answers, None) else None)
    reader = StreamReader(streams, table.stream_arn, "TRIM_HORIZON")
    settings = replace(stream_settings(), batching_window_s=0, parallelization_factor=1)
    poller = StreamPoller(
        reader,
        stub,
        settings,
        CheckpointStore(table.stream_arn),
        order="newest-first",
        retry_delay_s=0,
        log=lambda _: None,
    )
    # When the function reports k001 failed
    poller.drain()
    # Then, as in Lambda, only the records before the lowest reported sequence number count as done (k000):
    # the rest is retried, in the order handed out
    assert stub.batches == [keys[::-1], keys[:0:-1]]
    assert poller.stats.partial_failures == 1 and poller.idle
