"""What each sample event must answer through `sam local invoke`, and the `sam local start-api` requests.

The invocations run in this order on a fresh local stack, so every answer is known in advance.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from devkit import payloads
from devkit.http_client import http as smoke_http
from devkit.local_aws import client
from devkit.sandbox_secrets import sandbox_secrets
from local.stack.settings import TABLE_NAME

SECRETS = sandbox_secrets()
META = SECRETS["meta"]
VONAGE = SECRETS["vonage"]
PAGE_ID = next(iter(META["page_tokens"]))
NO_FAILURES: dict[str, Any] = {"batchItemFailures": []}


def stored(count: int) -> tuple[int, Any]:
    return 200, {"stored": count, "duplicates": 0}


# name -> (status, body) for HTTP events, or the whole answer for stream events (ReplyFunction).
EXPECTED: dict[str, Any] = {
    "meta_attachments.json": stored(1),
    "meta_data_deletion.json": (200, {"url": str, "confirmation_code": str}),
    "meta_data_deletion_status.json": (404, {"error": "not_found"}),  # a code that was never issued
    "meta_delivery_read.json": stored(2),
    "meta_echo.json": stored(1),
    "meta_handover.json": stored(2),
    "meta_postback.json": stored(1),
    "meta_reaction.json": stored(1),
    "meta_standby.json": stored(1),
    "meta_text_batch.json": stored(3),
    "meta_verify.json": (200, 1158201444),  # the text/plain challenge (compared as parsed JSON)
    "vonage_inbound_image_v1.json": stored(1),
    "vonage_inbound_v01.json": stored(1),
    "vonage_inbound_v1.json": stored(1),
    "vonage_status_v01.json": stored(1),
    "vonage_status_v1.json": stored(1),
    # The stream samples carry old timestamps: recorded as outside the 24-hour window, nothing to retry.
    "stream_echo_ignored.json": NO_FAILURES,
    "stream_inbound_meta.json": NO_FAILURES,
    "stream_inbound_vonage.json": NO_FAILURES,
    "stream_status_ignored.json": NO_FAILURES,
}
SAMPLE_PREFIXES = ("meta_", "vonage_", "stream_")


def function_for(name: str) -> str:
    return "ReplyFunction" if name.startswith("stream_") else "WebhookFunction"


def resign(event: dict[str, Any]) -> dict[str, Any]:
    """A Vonage sample with a token issued now (its committed one is valid for 5 minutes after `make events`)."""
    copy = json.loads(json.dumps(event))
    copy["headers"].update(payloads.vonage_headers(VONAGE, copy["body"].encode()))
    return copy


def matches(expected: Any, actual: Any) -> bool:
    """Equality, where a type in `expected` (e.g. `str`) accepts any value of that type."""
    if isinstance(expected, type):
        return isinstance(actual, expected)
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and set(expected) == set(actual)
            and all(matches(value, actual[key]) for key, value in expected.items())
        )
    return bool(expected == actual)


def http_answer(answer: dict[str, Any]) -> tuple[int, Any]:
    body = answer.get("body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            pass
    return int(answer.get("statusCode", 0)), body


def check_invoke(name: str, answer: Any) -> str | None:
    """None if the invoke answer is the expected one, else what differs."""
    expected = EXPECTED[name]
    if name.startswith("stream_"):
        return None if answer == expected else f"expected {expected}, got {answer}"
    if not isinstance(answer, dict):
        return f"expected an HTTP answer, got {answer!r}"
    status, body = http_answer(answer)
    if status == expected[0] and matches(expected[1], body):
        return None
    return f"expected {expected[0]} {expected[1]}, got {status} {body}"


# -- HTTP through `sam local start-api` -----------------------------------------------------------


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, Any]:
    """tools.smoke's client (status, JSON or text), with the patience a container's first start needs."""
    return smoke_http(method, url, body, headers, timeout)


def new_user() -> str:
    return "7" + str(uuid.uuid4().int)[:15]


def meta_body(user: str, text: str) -> bytes:
    now = payloads.now_ms()
    message = payloads.meta_message(
        user, PAGE_ID, now, message={"mid": f"m_sam_local_{uuid.uuid4().hex}", "text": text}
    )
    return payloads.encode(payloads.meta_page(message, page_id=PAGE_ID, time_ms=now))


def vonage_body(user: str, text: str) -> bytes:
    return payloads.encode(payloads.vonage_inbound(str(uuid.uuid4()), page_id=PAGE_ID, user=user, text=text))


FORGED_USER = new_user()  # the sender of the forged POST: nothing about it may be stored


def stored_mentions(dynamodb_url: str, text: str) -> int:
    """How many items of the events table mention `text` (whatever the key layout)."""
    dynamodb = client("dynamodb", dynamodb_url)
    pages = dynamodb.get_paginator("scan").paginate(TableName=TABLE_NAME, ConsistentRead=True)
    return sum(text in json.dumps(item) for page in pages for item in page["Items"])


def api_checks(api: str) -> list[tuple[str, tuple[int, Any], tuple[int, Any], str]]:
    """Send the start-api requests: (what, expected, got, user whose reply must reach the sandbox or "")."""
    results: list[tuple[str, tuple[int, Any], tuple[int, Any], str]] = []
    challenge = str(1_000_000_000 + uuid.uuid4().int % 9_000_000_000)
    query = urllib.parse.urlencode(
        {"hub.mode": "subscribe", "hub.verify_token": META["verify_token"], "hub.challenge": challenge}
    )
    results.append(
        ("GET /meta/webhook verify handshake", (200, int(challenge)), http("GET", f"{api}/meta/webhook?{query}"), "")
    )
    json_type = {"content-type": "application/json"}
    meta_user = new_user()
    body = meta_body(meta_user, "hi")
    results.append(
        (
            "POST /meta/webhook signed",
            stored(1),
            http("POST", f"{api}/meta/webhook", body, {**json_type, **payloads.meta_headers(META, body)}),
            meta_user,
        )
    )
    forged = meta_body(FORGED_USER, "hi")
    results.append(
        (
            "POST /meta/webhook bad signature",
            (401, {"error": "signature_invalid"}),
            http("POST", f"{api}/meta/webhook", forged, {**json_type, "x-hub-signature-256": "sha256=" + "0" * 64}),
            "",
        )
    )
    vonage_user = new_user()
    body = vonage_body(vonage_user, "hi")
    results.append(
        (
            "POST /vonage/inbound signed",
            stored(1),
            http("POST", f"{api}/vonage/inbound", body, {**json_type, **payloads.vonage_headers(VONAGE, body)}),
            vonage_user,
        )
    )
    return results


def replies(sandbox: str, user: str) -> list[dict[str, Any]]:
    """The sandbox's accepted sends to `user` (the reply function's answers)."""
    status, requests = http("GET", f"{sandbox}/_sandbox/requests?recipient={user}")
    if status != 200 or not isinstance(requests, list):
        return []
    return [r for r in requests if 200 <= int(r.get("status", 0)) < 300]
