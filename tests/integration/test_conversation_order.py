"""Order per conversation, end to end in one process: webhook -> DynamoDB Local stream -> poller lanes -> reply.

50 people each send 5 quick messages (interleaved, as they would arrive). The poller runs the template's
stream settings with small batches and 10 lanes, each lane its own reply function instance, and the Send
API answers after a random 0-200 ms. Every message must be answered exactly once, and each person's
replies must leave in the order that person wrote. A second test plays the least favourable schedule AWS
allows without the poller: every record in an invocation of its own, newest first, side by side.
"""

from __future__ import annotations

import json
import queue
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
import responses

from local import workers
from local.lambda_context import LambdaContext
from local.poller import CheckpointStore, StreamPoller
from local.services import client
from local.template import function_spec, stream_settings
from messenger.config import get_settings
from messenger.handover import answered_event_id
from messenger.reply.wiring import pipeline_for
from tests.helpers import PAGE_ID, dumps, load_handler, meta_body, meta_message, meta_post
from tools.streams import StreamReader, strip_internal

pytestmark = pytest.mark.integration

GRAPH = "https://graph.test"
CONVERSATIONS, MESSAGES, LANES, BATCH = 50, 5, 10, 4


class SlowSendApi:
    """The Send API with a random 0-200 ms latency; records which inbound message each send answers."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.lock = threading.Lock()
        self.sent: list[tuple[str, str]] = []  # (recipient, answered event id), in arrival order
        self.in_flight = 0
        self.max_in_flight = 0
        mock.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"), self._send)

    def _send(self, request: Any) -> tuple[int, dict, str]:
        body = json.loads(request.body)
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.sent.append((body["recipient"]["id"], answered_event_id(body["message"]["metadata"])))
            number = len(self.sent)
        time.sleep(random.uniform(0, 0.2))
        with self.lock:
            self.in_flight -= 1
        return 200, {}, json.dumps({"recipient_id": body["recipient"]["id"], "message_id": f"m_out_{number}"})


@pytest.fixture
def send_api(stack_env, monkeypatch):
    monkeypatch.setenv("GRAPH_API_BASE", GRAPH)
    get_settings.cache_clear()
    pipeline_for.cache_clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield SlowSendApi(mock)
    pipeline_for.cache_clear()


def test_fifty_conversations_of_quick_messages_are_answered_once_each_in_order(
    send_api, stack_env, dynamodb_endpoint, lambda_context
):
    # Given 50 users who each send 5 messages in quick succession (stored by the real webhook, interleaved)
    webhook = load_handler("webhook").lambda_handler
    users = [f"20000000000{c:05d}" for c in range(CONVERSATIONS)]
    now = int(time.time() * 1000)
    written: dict[str, list[str]] = {user: [] for user in users}
    for n in range(MESSAGES):
        for user in users:
            mid = f"m.order.{user[-5:]}.{n}"
            body = meta_body(meta_message(mid, f"question {n}", sender=user, ts=now + n))
            assert webhook(meta_post(dumps(body)), lambda_context)["statusCode"] == 200
            written[user].append(mid)
    # And the template's stream settings with small batches and 10 lanes, one reply function per lane
    settings = replace(stream_settings(), batch_size=BATCH, batching_window_s=0, parallelization_factor=LANES)
    spec = function_spec("ReplyFunction")
    handlers = [workers.load_handler(spec, instance=f"order{lane}") for lane in range(LANES)]

    def lane_invoke(lane: int):
        return lambda event: handlers[lane](event, LambdaContext(spec.function_id, spec.timeout_s, spec.memory_mb))

    reader = StreamReader(client("dynamodbstreams", dynamodb_endpoint), stack_env.stream_arn, "TRIM_HORIZON")
    poller = StreamPoller(
        reader,
        lane_invoke(0),
        settings,
        CheckpointStore(stack_env.stream_arn),
        lane_invoke=lane_invoke,
        retry_delay_s=0.05,
        log=lambda _: None,
    )
    # When the stream is drained
    poller.drain(timeout=240)
    # Then every message was answered exactly once
    answered = [event_id for _, event_id in send_api.sent]
    assert sorted(answered) == sorted(mid for mids in written.values() for mid in mids)
    # And each user's replies left in the order the user wrote: 0 violations
    violations = [user for user in users if [e for r, e in send_api.sent if r == user] != written[user]]
    assert violations == []
    # And lanes and conversations really ran side by side, in many small batches (wall time is not asserted:
    # it depends on the machine's load far more than on the code)
    assert send_api.max_in_flight > 5 and poller.stats.invocations >= CONVERSATIONS * MESSAGES // BATCH // 2
    lanes = {poller.lane_of({"dynamodb": {"Keys": {"pk": {"S": f"meta#{PAGE_ID}#{user}"}}}}) for user in users}
    assert {entry["lane"] for entry in poller.stats.history} == lanes and len(lanes) > LANES // 2
    # And nothing was left over: every claim settled as sent, the shard checkpointed
    claims = [i for i in stack_env.items() if i["sk"].startswith("REPLY#")]
    assert len(claims) == CONVERSATIONS * MESSAGES and {c["state"] for c in claims} == {"sent"}
    assert poller.idle and poller.stats.function_errors == 0


def test_records_delivered_newest_first_each_in_its_own_invocation_side_by_side_are_answered_in_order(
    send_api, stack_env, dynamodb_endpoint, lambda_context
):
    # Given 20 users who each send 4 quick messages (stored by the real webhook, interleaved)
    webhook = load_handler("webhook").lambda_handler
    users = [f"30000000000{c:05d}" for c in range(20)]
    now = int(time.time() * 1000)
    written: dict[str, list[str]] = {user: [] for user in users}
    for n in range(4):
        for user in users:
            mid = f"m.newest.{user[-5:]}.{n}"
            body = meta_body(meta_message(mid, f"question {n}", sender=user, ts=now + n))
            assert webhook(meta_post(dumps(body)), lambda_context)["statusCode"] == 200
            written[user].append(mid)
    reader = StreamReader(client("dynamodbstreams", dynamodb_endpoint), stack_env.stream_arn, "TRIM_HORIZON")
    records = [strip_internal(r) for r in reader.poll()]
    assert len(records) == 80
    # And the least favourable schedule AWS allows (order is promised per item only): each record in an
    # invocation of its own, newest first, 10 reply function instances side by side
    spec = function_spec("ReplyFunction")
    idle: queue.Queue[Any] = queue.Queue()
    for lane in range(LANES):
        idle.put(workers.load_handler(spec, instance=f"newest{lane}"))

    def invoke(record: dict[str, Any]) -> dict[str, Any]:
        handler = idle.get()
        try:
            context = LambdaContext(spec.function_id, spec.timeout_s, spec.memory_mb)
            return handler({"Records": [record]}, context)
        finally:
            idle.put(handler)

    with ThreadPoolExecutor(LANES) as pool:
        results = list(pool.map(invoke, reversed(records)))
    # Then no record failed, every message was answered exactly once, and in the order its user wrote
    assert results == [{"batchItemFailures": []}] * len(records)
    answered = [event_id for _, event_id in send_api.sent]
    assert sorted(answered) == sorted(mid for mids in written.values() for mid in mids)
    inversions = [user for user in users if [e for r, e in send_api.sent if r == user] != written[user]]
    assert inversions == []
