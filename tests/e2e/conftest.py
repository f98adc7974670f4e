"""Start the local stack once per session (`python -m local` on free ports) and drive it over HTTP only.

With AWS_SAM_STACK_NAME set (and AWS_REGION), the tests that only need the webhook's URLs and secrets (the
`deployment` fixture) target that deployed stack, found through its outputs as `make smoke` finds it; the
tests that need the local stack's insides (sandbox, table, poller: the `stack` fixture) are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkit import payloads
from devkit.http_client import http as http
from devkit.local_aws import client
from devkit.polling import wait_until as wait_until
from local.launcher import StackProcess
from messenger.storage import from_item
from tests.conftest import CALLER_AWS_ENV
from tests.helpers import META, PAGE_ID, VONAGE
from tools.smoke import Deployment, Secret, discover, webhook_outputs

STARTUP_TIMEOUT_S = 120
# Short poll, retry and callback delays keep the end-to-end tests quick.
FAST = {"LOCAL_POLL_INTERVAL": "0.1", "LOCAL_RETRY_DELAY": "0.1", "LOCAL_CALLBACK_DELAY": "0.05"}


def new_user() -> str:
    return "7" + str(uuid.uuid4().int)[:15]


@dataclass
class LocalStack:
    api: str
    sandbox: str
    dynamodb_url: str
    table: str
    moto_url: str = ""
    log_path: Path | None = None
    pid: int = 0  # the stack's own process (`python -m local`)

    def __post_init__(self) -> None:
        self.dynamodb = client("dynamodb", self.dynamodb_url)

    # -- as Meta and Vonage would call us --------------------------------------------------------

    def meta_post(self, payload: dict[str, Any], signature: str | None = "valid") -> tuple[int, Any]:
        body = payloads.encode(payload)
        headers = {}
        if signature == "valid":
            headers = payloads.meta_headers(META, body)
        elif signature is not None:
            headers[payloads.META_SIGNATURE] = signature
        return http("POST", f"{self.api}/meta/webhook", body, headers)

    def vonage_post(self, path: str, payload: dict[str, Any], authorization: str | None = "valid") -> tuple[int, Any]:
        body = payloads.encode(payload)
        headers = {}
        if authorization == "valid":
            headers = payloads.vonage_headers(VONAGE, body)
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

    def find(self, sk: str) -> dict[str, Any] | None:
        """The item with sort key `sk` (e.g. "MSG#<id>"), whatever its conversation."""
        return next((item for item in self.items() if item["sk"] == sk), None)

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
            return bool(
                first.get("idle")
                and second.get("idle")
                and first["stats"]["invocations"] == second["stats"]["invocations"]
            )

        wait_until(calm, timeout=60, interval=0)


def meta_message(
    user: str, text: str = "hello", mid: str | None = None, ts: int | None = None, **message: Any
) -> dict[str, Any]:
    """A Meta message event from `user`; `ts` is the event's `timestamp` (the user's order), now by default."""
    return payloads.meta_message(
        user,
        PAGE_ID,
        payloads.now_ms() if ts is None else ts,
        message={"mid": mid or f"m_e2e_{uuid.uuid4().hex}", "text": text, **message},
    )


def meta_body(*events: dict[str, Any]) -> dict[str, Any]:
    return payloads.meta_page(*events, page_id=PAGE_ID)


def vonage_inbound(user: str, text: str = "hello", message_uuid: str | None = None) -> dict[str, Any]:
    return payloads.vonage_inbound(message_uuid or str(uuid.uuid4()), page_id=PAGE_ID, user=user, text=text)


DEPLOYED = os.environ.get("AWS_SAM_STACK_NAME")


@contextlib.contextmanager
def caller_aws_environment() -> Iterator[None]:
    """The caller's own AWS_* variables (credentials, region, endpoints) while the deployed stack is read."""
    ours = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    for name in ours:
        del os.environ[name]
    os.environ.update(CALLER_AWS_ENV)
    try:
        yield
    finally:
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(ours)


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest) -> Deployment:
    """The webhook under test: the deployed stack (AWS_SAM_STACK_NAME), or else the local stack."""
    if DEPLOYED:
        with caller_aws_environment():
            return discover(DEPLOYED)
    local: LocalStack = request.getfixturevalue("stack")
    return Deployment("local", webhook_outputs(local.api), Secret(META), Secret(VONAGE))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    if DEPLOYED:
        pytest.skip(f"needs the local stack's sandbox and table; AWS_SAM_STACK_NAME={DEPLOYED} targets a deployed one")
    process = StackProcess(tmp_path_factory.mktemp("local-stack"), FAST)
    process.start()
    try:
        info = process.wait_ready(STARTUP_TIMEOUT_S)
        yield LocalStack(
            api=process.api,
            sandbox=info["sandbox"],
            dynamodb_url=info["dynamodb"],
            table=info["table"],
            moto_url=info["moto"],
            log_path=process.log_path,
            pid=process.process.pid if process.process else 0,
        )
    finally:
        process.stop()
