"""Start the local stack once per session (`python -m local` on free ports) and drive it over HTTP only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.launcher import StackProcess
from local.services import client
from messenger.providers.meta.signature import sign as meta_sign
from messenger.providers.vonage.signature import sign_callback
from messenger.storage import from_item
from tests.helpers import META, PAGE_ID, VONAGE

STARTUP_TIMEOUT_S = 120
# Short poll, retry and callback delays keep the end-to-end tests quick.
FAST = {"LOCAL_POLL_INTERVAL": "0.1", "LOCAL_RETRY_DELAY": "0.1", "LOCAL_CALLBACK_DELAY": "0.05"}


def wait_until(predicate: Callable[[], Any], timeout: float = 20, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            status, data = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data.decode(errors="replace")


def new_user() -> str:
    return "7" + str(uuid.uuid4().int)[:15]


@dataclass
class LocalStack:
    api: str
    sandbox: str
    dynamodb_url: str
    table: str
    log_path: Path | None = None

    def __post_init__(self) -> None:
        self.dynamodb = client("dynamodb", self.dynamodb_url)

    # -- as Meta and Vonage would call us --------------------------------------------------------

    def meta_post(self, payload: dict[str, Any], signature: str | None = "valid") -> tuple[int, Any]:
        body = json.dumps(payload).encode()
        headers = {}
        if signature == "valid":
            headers["x-hub-signature-256"] = meta_sign(META["app_secret"], body)
        elif signature is not None:
            headers["x-hub-signature-256"] = signature
        return http("POST", f"{self.api}/meta/webhook", body, headers)

    def vonage_post(self, path: str, payload: dict[str, Any], authorization: str | None = "valid") -> tuple[int, Any]:
        body = json.dumps(payload).encode()
        headers = {}
        if authorization == "valid":
            headers["authorization"] = sign_callback(VONAGE["signature_secret"], body, VONAGE["api_key"])
        elif authorization is not None:
            headers["authorization"] = authorization
        return http("POST", f"{self.api}{path}", body, headers)

    # -- what happened ----------------------------------------------------------------------------

    def sends(self, recipient: str, ok_only: bool = False) -> list[dict[str, Any]]:
        status, requests = http("GET", f"{self.sandbox}/_sandbox/requests?recipient={recipient}")
        assert status == 200
        return [r for r in requests if not ok_only or 200 <= r["status"] < 300]

    def fault(self, **spec: Any) -> None:
        status, _ = http("POST", f"{self.sandbox}/_sandbox/faults", json.dumps(spec).encode())
        assert status == 201

    def items(self, user: str | None = None) -> list[dict[str, Any]]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True)
        items = [from_item(item) for page in pages for item in page["Items"]]
        return [i for i in items if user is None or i.get("user_id") == user or user in json.dumps(i)]

    def item(self, pk: str) -> dict[str, Any] | None:
        found = self.dynamodb.get_item(TableName=self.table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")
        return from_item(found) if found else None

    def poller(self) -> dict[str, Any]:
        return http("GET", f"{self.api}/_local/poller")[1]

    def failures(self) -> list[dict[str, Any]]:
        return http("GET", f"{self.api}/_local/failures")[1]

    def settled(self, quiet_s: float = 1.0) -> None:
        """Wait until the poller has finished everything read so far, and nothing new came for `quiet_s`."""
        def calm() -> bool:
            first = self.poller()
            time.sleep(quiet_s)
            second = self.poller()
            return bool(first.get("idle") and second.get("idle")
                        and first["stats"]["invocations"] == second["stats"]["invocations"])
        wait_until(calm, timeout=60, interval=0)


def meta_message(user: str, text: str = "hello", mid: str | None = None, **message: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"sender": {"id": user}, "recipient": {"id": PAGE_ID}, "timestamp": now,
            "message": {"mid": mid or f"m_e2e_{uuid.uuid4().hex}", "text": text, **message}}


def meta_body(*events: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": int(time.time() * 1000), "messaging": list(events)}]}


def vonage_inbound(user: str, text: str = "hello", message_uuid: str | None = None) -> dict[str, Any]:
    return {"channel": "messenger", "message_uuid": message_uuid or str(uuid.uuid4()), "to": PAGE_ID, "from": user,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "message_type": "text", "text": text}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    process = StackProcess(tmp_path_factory.mktemp("local-stack"), FAST)
    process.start()
    try:
        info = process.wait_ready(STARTUP_TIMEOUT_S)
        yield LocalStack(api=process.api, sandbox=info["sandbox"], dynamodb_url=info["dynamodb"], table=info["table"],
                         log_path=process.log_path)
    finally:
        process.stop()
