#!/usr/bin/env python3
"""Write the signed sample events in events/ (for `sam local invoke`, the tests and the docs).

    python scripts/make_events.py                 # (re)write every event, Vonage tokens issued now
    python scripts/make_events.py --vonage-iat N  # Vonage tokens issued at epoch second N
    python scripts/make_events.py --check         # exit 1 if a committed event differs from what we generate

Everything is deterministic except the Vonage JWT `iat`: Vonage tokens go stale after 5 minutes, so re-run
this (`make events`) right before `sam local invoke` of a Vonage event. Bodies are signed with the
sandbox secrets in events/sandbox-secrets.json by the production signers; the stream events are built
from `messenger.storage.event_item` of the parsed HTTP samples, so they are exactly what the table streams.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit.lambda_code import add_layers_to_path  # noqa: E402

add_layers_to_path()
from devkit import payloads  # noqa: E402
from devkit.apigw_events import http_event  # noqa: E402
from devkit.payloads import meta_message as meta_item  # noqa: E402
from devkit.sam_env import env_json  # noqa: E402
from devkit.sandbox_secrets import sandbox_secrets  # noqa: E402
from messenger.events import Event  # noqa: E402
from messenger.handover import BOT_METADATA  # noqa: E402  (what our own sends carry, echoed back by Meta)
from messenger.providers.meta import events as meta_events  # noqa: E402
from messenger.providers.meta.signed_request import make_signed_request  # noqa: E402
from messenger.providers.vonage import events as vonage_events  # noqa: E402
from messenger.storage import event_item  # noqa: E402

EVENTS = ROOT / "events"
SECRETS = sandbox_secrets()
META = SECRETS["meta"]
VONAGE = SECRETS["vonage"]
PAGE_ID = next(iter(META["page_tokens"]))
USER = "3998527223577371"
OTHER_USER = "6789012345678901"
FIXED_S = 1_738_584_865  # 2025-02-03T12:14:25Z: every sample (and its request context) is "received" then
FIXED_MS = FIXED_S * 1000
REGION = "us-east-1"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/messenger-events/stream/2025-02-03T12:14:25.000"
RETENTION_S = 90 * 86_400
NAMESPACE = uuid.UUID("5b3f6a0e-7d1c-4c8e-9a43-2f1e8d6b0c11")

LOCAL_STACK = {
    "dynamodb": "http://host.docker.internal:8000",
    "moto": "http://host.docker.internal:5000",
    "sandbox": "http://host.docker.internal:3001",
}


# -- bodies ---------------------------------------------------------------------------------------


def meta_page(*entries: tuple[int, list[dict[str, Any]]], key: str = "messaging") -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": t, key: items} for t, items in entries]}


def meta_bodies() -> dict[str, dict[str, Any]]:
    t = FIXED_MS
    return {
        "meta_text_batch.json": meta_page(
            (
                t,
                [
                    meta_item(USER, PAGE_ID, t - 3000, message={"mid": "m_sample_text_1", "text": "Hi there!"}),
                    meta_item(
                        USER,
                        PAGE_ID,
                        t - 2000,
                        message={"mid": "m_sample_text_2", "text": "K\u00f6nnen Sie mir helfen? \u00e4\u00f6\u00e5"},
                    ),
                ],
            ),
            (
                t,
                [
                    meta_item(
                        OTHER_USER,
                        PAGE_ID,
                        t - 1000,
                        message={"mid": "m_sample_text_3", "text": "price", "quick_reply": {"payload": "PRICE"}},
                    ),
                ],
            ),
        ),
        "meta_echo.json": meta_page(
            (
                t,
                [
                    meta_item(
                        PAGE_ID,
                        USER,
                        t,
                        message={
                            "mid": "m_sample_echo_1",
                            "is_echo": True,
                            "app_id": 1517776481860111,
                            "metadata": BOT_METADATA,
                            "text": "Thanks, we got your message.",
                        },
                    )
                ],
            )
        ),
        "meta_delivery_read.json": meta_page(
            (
                t,
                [
                    meta_item(USER, PAGE_ID, t, delivery={"mids": ["m_sample_echo_1"], "watermark": t - 500}),
                    meta_item(USER, PAGE_ID, t + 1000, read={"watermark": t}),
                ],
            )
        ),
        "meta_postback.json": meta_page(
            (
                t,
                [
                    meta_item(
                        USER,
                        PAGE_ID,
                        t,
                        postback={
                            "mid": "m_sample_postback_1",
                            "title": "Get Started",
                            "payload": "GET_STARTED",
                            "referral": {"ref": "sample", "source": "SHORTLINK", "type": "OPEN_THREAD"},
                        },
                    )
                ],
            )
        ),
        "meta_reaction.json": meta_page(
            (
                t,
                [
                    meta_item(
                        USER,
                        PAGE_ID,
                        t,
                        reaction={
                            "reaction": "love",
                            "emoji": "\u2764\ufe0f",
                            "action": "react",
                            "mid": "m_sample_echo_1",
                        },
                    )
                ],
            )
        ),
        "meta_attachments.json": meta_page(
            (
                t,
                [
                    meta_item(
                        USER,
                        PAGE_ID,
                        t,
                        message={
                            "mid": "m_sample_attachments_1",
                            "attachments": [
                                {"type": "image", "payload": {"url": "https://cdn.example.com/sample.jpg"}},
                                {
                                    "type": "file",
                                    "payload": {"url": "https://cdn.example.com/sample.pdf", "title": "sample.pdf"},
                                },
                                {
                                    "type": "image",
                                    "payload": {
                                        "url": "https://cdn.example.com/like.png",
                                        "sticker_id": 369239263222822,
                                    },
                                },
                                {"type": "location", "payload": {"coordinates": {"lat": 52.52, "long": 13.405}}},
                            ],
                        },
                    )
                ],
            )
        ),
        "meta_standby.json": meta_page(
            (t, [meta_item(USER, PAGE_ID, t, message={"mid": "m_sample_standby_1", "text": "Can a person help me?"})]),
            key="standby",
        ),
        "meta_handover.json": meta_page(
            (
                t,
                [
                    meta_item(
                        USER,
                        PAGE_ID,
                        t,
                        take_thread_control={
                            "previous_owner_app_id": 1517776481860111,
                            "new_owner_app_id": 263902037430900,
                            "metadata": "agent took the thread",
                        },
                    ),
                    meta_item(
                        USER,
                        PAGE_ID,
                        t + 60_000,
                        pass_thread_control={
                            "previous_owner_app_id": 263902037430900,
                            "new_owner_app_id": 1517776481860111,
                            "metadata": "back to the bot",
                        },
                    ),
                ],
            )
        ),
    }


VONAGE_INBOUND_UUID = "aaaaaaaa-bbbb-4ccc-8ddd-000000000101"
VONAGE_IMAGE_UUID = "aaaaaaaa-bbbb-4ccc-8ddd-000000000102"
VONAGE_OUTBOUND_UUID = "aaaaaaaa-bbbb-4ccc-8ddd-000000000201"


def seed_v01() -> dict[str, Any]:
    """The v0.1 inbound example of Vonage's docs (the project seed document), with our sandbox Page as `to.id`."""
    return {
        "message_uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        "to": {"type": "messenger", "id": PAGE_ID},
        "from": {"type": "messenger", "id": "1111111111111111"},
        "timestamp": "2020-01-01T14:00:00.000Z",
        "message": {"content": {"type": "text", "text": "Hello from Facebook Messenger!"}},
    }


def vonage_bodies() -> dict[str, tuple[str, dict[str, Any]]]:
    stamp = "2025-02-03T12:14:25Z"
    return {
        "vonage_inbound_v1.json": (
            "/vonage/inbound",
            {
                "channel": "messenger",
                "message_uuid": VONAGE_INBOUND_UUID,
                "to": PAGE_ID,
                "from": USER,
                "timestamp": stamp,
                "message_type": "text",
                "text": "Hello",
            },
        ),
        "vonage_inbound_v01.json": ("/vonage/inbound", seed_v01()),
        "vonage_inbound_image_v1.json": (
            "/vonage/inbound",
            {
                "channel": "messenger",
                "message_uuid": VONAGE_IMAGE_UUID,
                "to": PAGE_ID,
                "from": USER,
                "timestamp": "2025-02-03 12:14:30 UTC",
                "message_type": "image",
                "image": {"url": "https://api-eu.nexmo.com/v3/media/aaaaaaaa-0000-4000-8000-000000000001"},
            },
        ),
        "vonage_status_v1.json": (
            "/vonage/status",
            {
                "message_uuid": VONAGE_OUTBOUND_UUID,
                "to": USER,
                "from": PAGE_ID,
                "timestamp": stamp,
                "status": "delivered",
                "channel": "messenger",
                "client_ref": "sample",
                "usage": {"currency": "EUR", "price": "0.0000"},
            },
        ),
        "vonage_status_v01.json": (
            "/vonage/status",
            {
                "message_uuid": VONAGE_OUTBOUND_UUID,
                "to": {"type": "messenger", "id": USER},
                "from": {"type": "messenger", "id": PAGE_ID},
                "timestamp": "2025-02-03T12:14:40.000Z",
                "status": "rejected",
                "error": {"code": 1340, "reason": "Outside of the allowed window"},
                "client_ref": "sample",
            },
        ),
    }


def body_bytes(payload: dict[str, Any]) -> bytes:
    """Compact JSON with non-ASCII as \\u escapes: the form Meta sends and signs."""
    return payloads.encode(payload, compact=True)


# -- HTTP events ----------------------------------------------------------------------------------


def pin(event: dict[str, Any], name: str) -> dict[str, Any]:
    """Make an API Gateway event deterministic: a request id derived from its name, a fixed time."""
    context = event["requestContext"]
    context["requestId"] = str(uuid.uuid5(NAMESPACE, name))
    context["time"] = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(FIXED_S))
    context["timeEpoch"] = FIXED_MS
    return event


def meta_event(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    raw = body_bytes(payload)
    headers = {
        "content-type": "application/json",
        "user-agent": "facebookexternalua",
        **payloads.meta_headers(META, raw),
    }
    return pin(http_event("POST", "/meta/webhook", raw, headers), name)


def vonage_event(name: str, path: str, payload: dict[str, Any], iat: int) -> dict[str, Any]:
    raw = body_bytes(payload)
    headers = {
        "content-type": "application/json",
        "user-agent": "Vonage API Platform",
        **payloads.vonage_headers(VONAGE, raw, issued_at=iat, jti=str(uuid.uuid5(NAMESPACE, name))),
    }
    return pin(http_event("POST", path, raw, headers), name)


def http_events(vonage_iat: int) -> dict[str, dict[str, Any]]:
    query = {"hub.mode": "subscribe", "hub.verify_token": META["verify_token"], "hub.challenge": "1158201444"}
    events = {
        "meta_verify.json": pin(
            http_event("GET", "/meta/webhook", query=query, headers={"user-agent": "facebookplatform/1.0"}),
            "meta_verify.json",
        )
    }
    events.update({name: meta_event(name, payload) for name, payload in meta_bodies().items()})
    events.update(
        {name: vonage_event(name, path, payload, vonage_iat) for name, (path, payload) in vonage_bodies().items()}
    )
    events.update(data_deletion_events())
    return events


DELETION_CODE = "0123456789abcdef0123"


def data_deletion_events() -> dict[str, dict[str, Any]]:
    """Meta's data-deletion callback (form-encoded signed_request) and a GET of its status URL."""
    signed = make_signed_request(
        META["app_secret"], {"algorithm": "HMAC-SHA256", "user_id": USER, "issued_at": FIXED_S}
    )
    form = urlencode({"signed_request": signed}).encode()
    post = http_event(
        "POST",
        "/meta/data-deletion",
        form,
        {
            "content-type": "application/x-www-form-urlencoded",
            "host": "localhost:3000",
            "x-forwarded-proto": "http",
            "user-agent": "facebookexternalua",
        },
    )
    status = http_event(
        "GET",
        f"/meta/data-deletion/{DELETION_CODE}",
        route_key="GET /meta/data-deletion/{code}",
        path_parameters={"code": DELETION_CODE},
        headers={"host": "localhost:3000"},
    )
    return {
        "meta_data_deletion.json": pin(post, "meta_data_deletion.json"),
        "meta_data_deletion_status.json": pin(status, "meta_data_deletion_status.json"),
    }


# -- stream events --------------------------------------------------------------------------------


def stream_event(name: str, events: list[Event]) -> dict[str, Any]:
    items = [event_item(e, now_s=FIXED_S, retention_s=RETENTION_S) for e in events]
    return {
        "Records": [
            payloads.stream_record(
                item,
                event_id=hashlib.md5(f"{name}#{i}".encode()).hexdigest(),  # noqa: S324 - an id, not security
                sequence=100000000000000000000 + i * 100 + len(name),
                region=REGION,
                stream_arn=STREAM_ARN,
                created_s=FIXED_S,
            )
            for i, item in enumerate(items)
        ]
    }


def stream_events() -> dict[str, dict[str, Any]]:
    meta = meta_bodies()
    vonage = vonage_bodies()

    def parsed_meta(name: str) -> list[Event]:
        return meta_events.parse_body(body_bytes(meta[name]))

    def parsed_vonage(name: str, parse: Callable[[bytes], Event]) -> list[Event]:
        return [parse(body_bytes(vonage[name][1]))]

    return {
        "stream_inbound_meta.json": stream_event("stream_inbound_meta.json", parsed_meta("meta_text_batch.json")),
        "stream_inbound_vonage.json": stream_event(
            "stream_inbound_vonage.json", parsed_vonage("vonage_inbound_v1.json", vonage_events.parse_inbound)
        ),
        "stream_echo_ignored.json": stream_event("stream_echo_ignored.json", parsed_meta("meta_echo.json")),
        "stream_status_ignored.json": stream_event(
            "stream_status_ignored.json",
            parsed_vonage("vonage_status_v1.json", vonage_events.parse_status) + parsed_meta("meta_delivery_read.json"),
        ),
    }


# -- output ---------------------------------------------------------------------------------------


def generate(vonage_iat: int) -> dict[str, Any]:
    files: dict[str, Any] = {}
    files.update(http_events(vonage_iat))
    files.update(stream_events())
    files["env.json"] = env_json(**LOCAL_STACK)
    return files


def render(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def is_vonage(name: str) -> bool:
    return name.startswith("vonage_")


def without_token(event: dict[str, Any]) -> dict[str, Any]:
    """A Vonage event minus its Authorization header (the only part that depends on the time)."""
    copy = json.loads(json.dumps(event))
    copy["headers"].pop("authorization", None)
    return copy


def check(files: dict[str, Any]) -> list[str]:
    """Names of committed events that differ from what this script generates (Vonage: ignoring the token)."""
    stale: list[str] = []
    for name, value in files.items():
        path = EVENTS / name
        if not path.exists():
            stale.append(f"{name}: missing")
            continue
        committed = json.loads(path.read_text(encoding="utf-8"))
        if is_vonage(name):
            same = without_token(committed) == without_token(value) and "authorization" in committed["headers"]
        else:
            same = path.read_text(encoding="utf-8") == render(value)
        if not same:
            stale.append(f"{name}: differs from what scripts/make_events.py generates")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vonage-iat", type=int, default=None, help="JWT iat of the Vonage events (default: now)")
    parser.add_argument("--check", action="store_true", help="compare the committed events instead of writing")
    args = parser.parse_args(argv)
    files = generate(int(time.time()) if args.vonage_iat is None else args.vonage_iat)
    if args.check:
        stale = check(files)
        for line in stale:
            print(f"stale: events/{line}", file=sys.stderr)
        if stale:
            print("run `make events` (python scripts/make_events.py) and commit the result", file=sys.stderr)
        return 1 if stale else 0
    EVENTS.mkdir(exist_ok=True)
    for name, value in files.items():
        (EVENTS / name).write_text(render(value), encoding="utf-8")
    print(f"wrote {len(files)} files to {EVENTS.relative_to(ROOT)}/ (Vonage tokens valid for 5 minutes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
