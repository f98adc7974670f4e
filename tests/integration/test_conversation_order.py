"""Order per conversation, end to end in one process: webhook -> DynamoDB Local stream -> poller -> reply.

People each send a few quick messages (interleaved, as they would arrive), stored by the real webhook. The
poller runs the template's stream settings with small batches under a schedule AWS allows: one lane; lanes
by full item key (ParallelizationFactor 10: AWS keeps order only per item, and each message is an item);
one shard split into two child shards read side by side; the same with each read handed to the reply
function newest item first. Each lane calls its own reply function instance (its first call after a
random cold start of up to 1 s, so lanes and child shards start apart), and the Send API answers after a
random 0-200 ms. Every message must be answered exactly once, and each person's replies must reach
the Send API in the order that person wrote them (read from the `metadata` each send carries), one at a
time. A message whose send fails must hold back only its own conversation: the later ones are answered
after it. A last test plays a schedule without the poller: every record in an invocation of its own, newest
first, side by side.

A reply function that trusted stream order passed only the one-lane cases (issue 19): the other schedules
put between 6 and 75 pairs of replies out of order among 10 conversations of 5 messages, and a message
given up took its conversation's later ones with it.
"""

from __future__ import annotations

import json
import queue
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import responses

from bench.common import inversions
from devkit.lambda_context import LambdaContext
from devkit.local_aws import client
from devkit.streams import StreamReader, strip_internal
from local import workers
from local.poller import CheckpointStore, StreamPoller
from local.template import function_spec, stream_settings
from messenger.config import get_settings
from messenger.handover import answered_event_id
from messenger.reply.wiring import pipeline_for
from tests.helpers import dumps, load_handler, meta_body, meta_message, meta_post

pytestmark = pytest.mark.integration

GRAPH = "https://graph.test"
CONVERSATIONS, MESSAGES, BATCH = 10, 5, 4
COLD_START_S = 1.0  # a reply function instance's first invocation waits up to this long (its cold start)
MID = re.compile(r"m\.order\.\d{5}\.\d+")
TRANSIENT = (500, {"error": {"message": "An unexpected error has occurred.", "type": "OAuthException", "code": 2}})
PERMANENT = (400, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}})


@dataclass(frozen=True)
class Schedule:
    """How the poller hands the stream to the reply function (local/poller.py)."""

    name: str
    factor: int  # ParallelizationFactor
    split: int = 1  # virtual child shards
    order: str = "stream"


ONE_LANE = Schedule("one-lane", 1)
FULL_KEY_LANES = Schedule("lanes-by-full-item-key", 10)
SPLIT = Schedule("two-child-shards", 1, split=2)
NEWEST_FIRST = Schedule("newest-first-over-two-shards-x-10-lanes", 10, split=2, order="newest-first")


@dataclass
class Send:
    recipient: str
    event_id: str
    ok: bool
    overlapped: bool  # another send to the same person was still in flight when this one arrived


class SendApi:
    """The Send API with a random 0-200 ms latency: records every send as it arrives, and fails the sends that
    answer a given message as told (`fail`)."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.lock = threading.Lock()
        self.sends: list[Send] = []
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight = 0
        self.faults: dict[str, tuple[tuple[int, dict[str, Any]], int | None]] = {}
        mock.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"), self._send)

    def fail(self, event_id: str, answer: tuple[int, dict[str, Any]], times: int | None = None) -> None:
        """Answer the sends of `event_id`'s reply with `answer`, `times` times (None: always)."""
        self.faults[event_id] = (answer, times)

    def _send(self, request: Any) -> tuple[int, dict, str]:
        body = json.loads(request.body)
        recipient, event_id = body["recipient"]["id"], answered_event_id(body["message"]["metadata"])
        with self.lock:
            answer, times = self.faults.get(event_id, (None, None))
            if answer is not None and times is not None:
                self.faults[event_id] = (answer, times - 1) if times > 1 else (None, None)
            self.sends.append(Send(recipient, event_id, answer is None, self.in_flight[recipient] > 0))
            self.in_flight[recipient] += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight.total())
            number = len(self.sends)
        time.sleep(random.uniform(0, 0.2))
        with self.lock:
            self.in_flight[recipient] -= 1
        if answer is not None:
            return answer[0], {}, json.dumps(answer[1])
        return 200, {}, json.dumps({"recipient_id": recipient, "message_id": f"m_out_{number}"})

    def answered(self, recipient: str | None = None) -> list[str]:
        """The event ids answered (successful sends), in the order they reached the Send API."""
        return [s.event_id for s in self.sends if s.ok and recipient in (None, s.recipient)]

    def attempts(self, event_id: str) -> list[int]:
        """Where the sends for `event_id` (failed ones too) came in the arrival order."""
        return [i for i, s in enumerate(self.sends) if s.event_id == event_id]


@pytest.fixture
def send_api(stack_env, monkeypatch):
    monkeypatch.setenv("GRAPH_API_BASE", GRAPH)
    get_settings.cache_clear()
    pipeline_for.cache_clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield SendApi(mock)
    pipeline_for.cache_clear()


@dataclass
class Conversations:
    """What the users wrote, through the real webhook."""

    webhook: Callable[..., Any]
    context: Any
    written: dict[str, list[str]] = field(default_factory=dict)  # user -> message ids in the order written

    def send(self, user: str, n: int) -> str:
        mid = f"m.order.{user[-5:]}.{n}"
        body = meta_body(meta_message(mid, f"question {n}", sender=user, ts=int(time.time() * 1000) + n))
        assert self.webhook(meta_post(dumps(body)), self.context)["statusCode"] == 200
        self.written.setdefault(user, []).append(mid)
        return mid

    def burst(self, conversations: int, messages: int) -> list[str]:
        """`conversations` users each send `messages` quick messages, interleaved; the users."""
        users = [f"20000000000{c:05d}" for c in range(conversations)]
        for n in range(messages):
            for user in users:
                self.send(user, n)
        return users


@pytest.fixture
def people(send_api, lambda_context) -> Conversations:
    return Conversations(load_handler("webhook").lambda_handler, lambda_context)


class Delivery:
    """The reply function of each lane (its own instance, with a cold start of a random 0-1 s on its first
    invocation, so lanes and child shards start apart), recording which lane got each message, in order."""

    def __init__(self, lanes: int) -> None:
        spec = function_spec("ReplyFunction")
        self.context = lambda: LambdaContext(spec.function_id, spec.timeout_s, spec.memory_mb)
        self.handlers = [workers.load_handler(spec, instance=f"order{lane}") for lane in range(lanes)]
        self.cold = set(range(lanes))
        self.lock = threading.Lock()
        self.handed: list[tuple[int, str]] = []  # (lane, message id) as handed to the function

    def lane(self, lane: int) -> Callable[[dict[str, Any]], Any]:
        def invoke(event: dict[str, Any]) -> Any:
            if lane in self.cold:
                self.cold.discard(lane)
                time.sleep(random.uniform(0, COLD_START_S))
            with self.lock:
                for record in event["Records"]:
                    self.handed.extend((lane, mid) for mid in dict.fromkeys(MID.findall(json.dumps(record))))
            return self.handlers[lane](event, self.context())

        return invoke


def run_stream(
    stack_env,
    dynamodb_endpoint: str,
    schedule: Schedule,
    failures: list[dict[str, Any]] | None = None,
    checkpoints: CheckpointStore | None = None,
    **settings: Any,
) -> tuple[StreamPoller, Delivery]:
    """Drain the stream (from `checkpoints`, else from the start) with the template's settings, small batches
    unless `settings` say otherwise and no window, under `schedule`."""
    checkpoints = checkpoints or CheckpointStore(stack_env.stream_arn)
    settings = replace(
        stream_settings(),
        **{"batch_size": BATCH, "batching_window_s": 0, "parallelization_factor": schedule.factor, **settings},
    )
    delivery = Delivery(schedule.factor * schedule.split)
    reader = StreamReader(
        client("dynamodbstreams", dynamodb_endpoint), stack_env.stream_arn, "TRIM_HORIZON", checkpoints.get()
    )
    poller = StreamPoller(
        reader,
        delivery.lane(0),
        settings,
        checkpoints,
        on_failure=failures.append if failures is not None else None,
        lane_invoke=delivery.lane,
        retry_delay_s=0.05,
        log=lambda _: None,
        split=schedule.split,
        order=schedule.order,
    )
    poller.drain(timeout=120)
    return poller, delivery


def order_report(send_api: SendApi, written: dict[str, list[str]]) -> tuple[int, int, int]:
    """(inversions, conversations with any, sends that overlapped an earlier one of the same person)."""
    counts = [inversions(send_api.answered(user), mids) for user, mids in written.items()]
    overlapped = sum(1 for s in send_api.sends if s.overlapped)
    return sum(counts), sum(1 for c in counts if c), overlapped


@pytest.mark.parametrize(
    "schedule",
    [ONE_LANE, FULL_KEY_LANES, SPLIT, NEWEST_FIRST],
    ids=lambda schedule: schedule.name,
)
def test_quick_messages_are_answered_once_each_in_the_users_order(
    schedule: Schedule, send_api, people, stack_env, dynamodb_endpoint
):
    # Given 10 users who each send 5 messages in quick succession (stored by the real webhook, interleaved)
    users = people.burst(CONVERSATIONS, MESSAGES)
    # When the stream is drained under the schedule, the Send API answering after a random 0-200 ms
    poller, delivery = run_stream(stack_env, dynamodb_endpoint, schedule)
    # Then the schedule did what it says: a conversation's messages reached several lanes, or newest first
    lanes_per_user = [len({lane for lane, mid in delivery.handed if mid in people.written[u]}) for u in users]
    if schedule.factor * schedule.split > 1:
        assert sum(n > 1 for n in lanes_per_user) > CONVERSATIONS // 2
    if schedule.order == "newest-first":
        handed = [mid for _, mid in delivery.handed]
        assert sum(inversions(handed, people.written[u]) > 0 for u in users) > CONVERSATIONS // 2
    # And every message was answered exactly once
    answered = Counter(send_api.answered())
    assert sorted(answered) == sorted(mid for mids in people.written.values() for mid in mids)
    assert [mid for mid, n in answered.items() if n > 1] == []
    # And each user's replies reached the Send API in the order the user wrote, one at a time: 0 inversions
    total, conversations, overlapped = order_report(send_api, people.written)
    assert (total, overlapped) == (0, 0), (
        f"{schedule.name}: {total} inversions in {conversations} of {CONVERSATIONS} conversations, "
        f"{overlapped} sends overlapping an earlier one of the same person"
    )
    # And conversations (and lanes) really ran side by side, and the shard is checkpointed past everything
    assert send_api.max_in_flight > (BATCH if schedule.factor * schedule.split > 1 else 1)
    assert poller.idle and poller.stats.function_errors == 0 and len(poller.checkpoints.get()) == 1


FAULTS = {
    # the failing message's sends: answered with, how many times (None: every time)
    "transient": (TRANSIENT, 6),  # more than one invocation's in-call retries: the stream redelivers it
    "permanent": (PERMANENT, None),  # recorded as failed, never retried
    "retries-exhausted": (TRANSIENT, None),  # given up by the event source mapping (MaximumRetryAttempts 1)
}


@pytest.mark.parametrize(
    "schedule, fault",
    [(schedule, fault) for schedule in (ONE_LANE, NEWEST_FIRST) for fault in FAULTS],
    ids=lambda value: value.name if isinstance(value, Schedule) else value,
)
def test_a_failing_messages_later_messages_are_answered_after_it(
    schedule: Schedule, fault: str, send_api, people, stack_env, dynamodb_endpoint
):
    # Given 6 users who each send 4 quick messages, and the send answering user 0's second message fails
    users = people.burst(6, 4)
    first, failing, *later = people.written[users[0]]
    answer, times = FAULTS[fault]
    send_api.fail(failing, answer, times)
    # When the stream is drained in the template's batches of 25 (all of a user's messages in one), with at
    # most 1 retry of a record
    failures: list[dict[str, Any]] = []
    checkpoints = CheckpointStore(stack_env.stream_arn)
    settings = {"batch_size": stream_settings().batch_size, "maximum_retry_attempts": 1}
    run_stream(stack_env, dynamodb_endpoint, schedule, failures, checkpoints, **settings)
    if fault == "retries-exhausted":
        # (it was given up; the person's next message rings the conversation's doorbell again)
        later.append(people.send(users[0], 4))
        run_stream(stack_env, dynamodb_endpoint, schedule, failures, checkpoints, **settings)
    # Then its later messages were answered, each once, in order, and only after its last attempt
    attempts = send_api.attempts(failing)
    answered = send_api.answered(users[0])
    expected = [first, *([failing] if fault == "transient" else []), *later]
    assert answered == expected, f"{schedule.name}/{fault}: user 0's replies came {answered}, not {expected}"
    assert len(attempts) > 1 if fault != "permanent" else len(attempts) == 1
    assert all(send_api.attempts(mid)[0] > attempts[-1] for mid in later)
    # And everyone else was answered exactly once, in order
    for user in users[1:]:
        assert send_api.answered(user) == people.written[user]


def test_records_delivered_newest_first_each_in_its_own_invocation_side_by_side_are_answered_in_order(
    send_api, people, stack_env, dynamodb_endpoint
):
    # Given 20 users who each send 4 quick messages (stored by the real webhook, interleaved)
    users = people.burst(20, 4)
    reader = StreamReader(client("dynamodbstreams", dynamodb_endpoint), stack_env.stream_arn, "TRIM_HORIZON")
    records = [strip_internal(r) for r in reader.poll()]
    assert len(records) == 80
    # And the least favourable schedule AWS allows (order is promised per item only): each record in an
    # invocation of its own, newest first, 10 reply function instances side by side
    spec = function_spec("ReplyFunction")
    idle: queue.Queue[Any] = queue.Queue()
    for lane in range(10):
        idle.put(workers.load_handler(spec, instance=f"newest{lane}"))

    def invoke(record: dict[str, Any]) -> dict[str, Any]:
        handler = idle.get()
        try:
            return handler({"Records": [record]}, LambdaContext(spec.function_id, spec.timeout_s, spec.memory_mb))
        finally:
            idle.put(handler)

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(invoke, reversed(records)))
    # Then no record failed, every message was answered exactly once, and in the order its user wrote
    assert results == [{"batchItemFailures": []}] * len(records)
    assert sorted(send_api.answered()) == sorted(mid for mids in people.written.values() for mid in mids)
    assert [user for user in users if send_api.answered(user) != people.written[user]] == []
