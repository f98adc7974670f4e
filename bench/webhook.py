"""Webhook benchmarks: warm handler time against a bare conditional PutItem (cold imports: bench/coldstart.py)."""

from __future__ import annotations

import time
import uuid
from types import ModuleType
from typing import Any

from bench.common import ROOT, Row, Stack, interleaved
from devkit import payloads
from devkit.apigw_events import http_event
from devkit.lambda_code import load_module
from devkit.lambda_context import LambdaContext
from devkit.local_aws import client
from devkit.sandbox_secrets import sandbox_secrets
from messenger.events import Event, Kind, Provider
from messenger.storage import event_item

SECRETS = sandbox_secrets()
PAGE_ID = next(iter(SECRETS["meta"]["page_tokens"]))
USER = "3998527223577371"
TEXT = "Hello, I would like to know your opening hours on Saturday."


def load_webhook() -> ModuleType:
    """A fresh copy of the webhook function's module (its own globals: clients, cached secrets)."""
    return load_module(ROOT / "functions" / "webhook" / "app.py", "bench_webhook_app")


def meta_post(payload: dict[str, Any]) -> dict[str, Any]:
    """The API Gateway event of a signed Meta POST of `payload` (compact JSON, as Meta sends it)."""
    body, signature = payloads.signed_meta(payload, SECRETS["meta"], compact=True)
    return http_event("POST", "/meta/webhook", body, {"content-type": "application/json", **signature})


def meta_events(run: str, count: int) -> list[dict[str, Any]]:
    """Signed single-message Meta POSTs, each with a unique mid (built before timing)."""
    events = []
    for i in range(count):
        message = payloads.meta_message(
            USER, PAGE_ID, 1_700_000_000_000 + i, message={"mid": f"m_{run}_{i}", "text": TEXT}
        )
        events.append(meta_post(payloads.meta_page(message, page_id=PAGE_ID, time_ms=1_700_000_000_000)))
    return events


def vonage_events(run: str, count: int) -> list[dict[str, Any]]:
    """Signed Vonage v1 inbound texts, each with a unique message_uuid (signed now: valid for 5 minutes)."""
    events = []
    for i in range(count):
        body, signature = payloads.signed_vonage(
            payloads.vonage_inbound(
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run}/{i}")),
                page_id=PAGE_ID,
                user=USER,
                text=TEXT,
                timestamp="2025-02-03T12:14:25Z",
            ),
            SECRETS["vonage"],
            compact=True,
        )
        events.append(http_event("POST", "/vonage/inbound", body, {"content-type": "application/json", **signature}))
    return events


def floor_items(run: str, count: int) -> list[dict[str, Any]]:
    """Items of the same size and shape as the handler stores, with unique keys."""
    items = []
    for i in range(count):
        event = Event(
            provider=Provider.META,
            event_id=f"floor_{run}_{i}",
            kind=Kind.MESSAGE,
            page_id=PAGE_ID,
            user_id=USER,
            timestamp_ms=1_700_000_000_000 + i,
            text=TEXT,
            raw={
                "sender": {"id": USER},
                "recipient": {"id": PAGE_ID},
                "timestamp": 1_700_000_000_000 + i,
                "message": {"mid": f"floor_{run}_{i}", "text": TEXT},
            },
        )
        items.append(event_item(event, now_s=int(time.time()), retention_s=90 * 86400))
    return items


def handler_rows(stack: Stack, iterations: int, warmup: int) -> list[Row]:
    module = load_webhook()
    context = LambdaContext("bench-webhook", timeout_s=10)
    total = iterations + warmup
    run = uuid.uuid4().hex[:8]
    meta, vonage = meta_events(run, total), vonage_events(run, total)

    def call(events: list[dict[str, Any]]):
        def invoke(i: int) -> None:
            response = module.lambda_handler(events[i], context)
            if response["statusCode"] != 200:
                raise RuntimeError(f"handler answered {response['statusCode']}: {response.get('body')}")

        return invoke

    dynamodb = client("dynamodb", stack.dynamodb_endpoint)
    items = floor_items(run, total)

    def put(i: int) -> None:
        dynamodb.put_item(TableName=stack.table, Item=items[i], ConditionExpression="attribute_not_exists(pk)")

    samples = interleaved({"meta": call(meta), "vonage": call(vonage), "floor": put}, iterations, warmup)
    meta_samples, vonage_samples, floor_samples = samples["meta"], samples["vonage"], samples["floor"]
    return [
        Row("webhook Meta message (warm)", meta_samples, floor_samples, goal=1.3),
        Row("webhook Vonage v1 inbound (warm)", vonage_samples, floor_samples, goal=1.3),
    ]
