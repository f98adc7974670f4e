"""Webhook benchmarks: warm handler time against a bare conditional PutItem (cold imports: bench/coldstart.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import uuid
from types import ModuleType
from typing import Any

from bench.common import ROOT, Row, Stack, interleaved
from local.apigw import http_event
from local.lambda_context import LambdaContext
from local.services import client, sandbox_secrets
from messenger.models import Event, Kind, Provider
from messenger.providers.meta.signature import sign
from messenger.providers.vonage.signature import sign_callback
from messenger.storage import event_item

SECRETS = sandbox_secrets()
PAGE_ID = next(iter(SECRETS["meta"]["page_tokens"]))
USER = "3998527223577371"
TEXT = "Hello, I would like to know your opening hours on Saturday."


def load_webhook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_webhook_app", ROOT / "functions" / "webhook" / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def meta_events(run: str, count: int) -> list[dict[str, Any]]:
    """Signed single-message Meta POSTs, each with a unique mid (built before timing)."""
    events = []
    for i in range(count):
        body = _dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": 1_700_000_000_000, "messaging": [
            {"sender": {"id": USER}, "recipient": {"id": PAGE_ID}, "timestamp": 1_700_000_000_000 + i,
             "message": {"mid": f"m_{run}_{i}", "text": TEXT}}]}]})
        headers = {"content-type": "application/json", "x-hub-signature-256": sign(SECRETS["meta"]["app_secret"], body)}
        events.append(http_event("POST", "/meta/webhook", body, headers))
    return events


def vonage_events(run: str, count: int) -> list[dict[str, Any]]:
    """Signed Vonage v1 inbound texts, each with a unique message_uuid (signed now: valid for 5 minutes)."""
    events = []
    vonage = SECRETS["vonage"]
    for i in range(count):
        body = _dumps({"channel": "messenger", "message_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run}/{i}")),
                       "to": PAGE_ID, "from": USER, "timestamp": "2025-02-03T12:14:25Z", "message_type": "text",
                       "text": TEXT})
        headers = {"content-type": "application/json",
                   "authorization": sign_callback(vonage["signature_secret"], body, vonage["api_key"])}
        events.append(http_event("POST", "/vonage/inbound", body, headers))
    return events


def floor_items(run: str, count: int) -> list[dict[str, Any]]:
    """Items of the same size and shape as the handler stores, with unique keys."""
    items = []
    for i in range(count):
        event = Event(provider=Provider.META, event_id=f"floor_{run}_{i}", kind=Kind.MESSAGE, page_id=PAGE_ID,
                      user_id=USER, timestamp_ms=1_700_000_000_000 + i, text=TEXT,
                      raw={"sender": {"id": USER}, "recipient": {"id": PAGE_ID}, "timestamp": 1_700_000_000_000 + i,
                           "message": {"mid": f"floor_{run}_{i}", "text": TEXT}})
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
