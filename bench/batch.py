"""A signed 1,000-event Meta batch through the webhook handler on DynamoDB Local, against 1,000 bare PutItems.

The batch is Meta's cap per POST (MAX_EVENTS_PER_POST): 100 conversations x 10 messages. The floor is the same
number of conditional PutItems of same-size items, one after another, on a fresh client in this process.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bench.common import Stack
from bench.webhook import PAGE_ID, TEXT, floor_items, load_webhook, meta_post
from devkit import payloads
from devkit.lambda_context import LambdaContext
from devkit.local_aws import client
from messenger.providers.meta.events import MAX_EVENTS_PER_POST

USERS = 100


def signed_batch(run: str, count: int = MAX_EVENTS_PER_POST) -> dict[str, Any]:
    messaging = [
        payloads.meta_message(
            f"{3998527223577371 + i % USERS}",
            PAGE_ID,
            1_700_000_000_000 + i,
            message={"mid": f"m_batch_{run}_{i}", "text": TEXT},
        )
        for i in range(count)
    ]
    return meta_post(payloads.meta_page(*messaging, page_id=PAGE_ID, time_ms=1_700_000_000_000))


def run(stack: Stack, runs: int = 3) -> dict[str, Any]:
    """Seconds for the batch end to end and for the bare puts, `runs` times each (interleaved); medians."""
    module = load_webhook()
    context = LambdaContext("bench-webhook", timeout_s=10)
    module.lambda_handler(signed_batch("warm", 20), context)  # secrets cached, client pool warm
    batch_s, floor_s = [], []
    for _ in range(runs):
        tag = uuid.uuid4().hex[:8]
        event = signed_batch(tag)
        started = time.perf_counter()
        response = module.lambda_handler(event, context)
        batch_s.append(time.perf_counter() - started)
        if response["statusCode"] != 200:
            raise RuntimeError(f"handler answered {response['statusCode']}: {response.get('body')}")
        dynamodb = client("dynamodb", stack.dynamodb_endpoint)
        items = floor_items(tag, MAX_EVENTS_PER_POST)
        started = time.perf_counter()
        for item in items:
            dynamodb.put_item(TableName=stack.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        floor_s.append(time.perf_counter() - started)
    batch, floor = sorted(batch_s)[len(batch_s) // 2], sorted(floor_s)[len(floor_s) // 2]
    return {
        "events": MAX_EVENTS_PER_POST,
        "batch_s": round(batch, 2),
        "floor_s": round(floor, 2),
        "ratio": round(batch / floor, 2),
        "batch_runs_s": [round(s, 2) for s in batch_s],
        "floor_runs_s": [round(s, 2) for s in floor_s],
    }
