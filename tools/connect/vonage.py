"""The Vonage Application API calls `make connect` makes (Application API v2).

`GET` and `PUT {base}/v2/applications/{id}`, authenticated with HTTP Basic `api_key:api_secret` (the API's only
scheme: "Base64 encoded API key and secret joined by a colon"). The PUT carries the application's `name` and its
whole `capabilities` (the Vonage CLI too fetches the application before it updates a capability): only the
Messages webhooks and version change, every other capability and setting is sent back as it was read.
Messages webhooks: `inbound_url` and `status_url` as `{"address", "http_method": "POST"}` (POST is the only
method allowed), `version` `v1` ("If not populated will be set to v1").

The fixed Vonage secret has no API secret (`{application_id, private_key, signature_secret, api_key}`): it comes
from the environment variable VONAGE_API_SECRET, or from an optional `api_secret` key in the secret.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from typing import Any

from devkit.http_client import Reply
from tools.connect.api import Caller, ConnectError, wait_text

WEBHOOK_VERSION = "v1"
WEBHOOK_METHOD = "POST"


def vonage_error(reply: Reply) -> ConnectError:
    body = reply.body if isinstance(reply.body, dict) else {}
    detail = str(body.get("detail") or body.get("title") or reply.body or "")[:300]
    invalid = ", ".join(f"{p.get('name')}: {p.get('reason')}" for p in body.get("invalid_parameters") or [])
    status = reply.status
    if status == 401:
        return ConnectError(
            "Vonage refused the API key and secret (401): check the secret's api_key and VONAGE_API_SECRET "
            "(or the secret's api_secret)"
        )
    if status == 403:
        return ConnectError(f"permission missing (Vonage 403): this API key may not change the application. {detail}")
    if status == 404:
        return ConnectError("Vonage has no such application for this API key (404): check the secret's application_id")
    if status == 429:
        wait_s = _retry_after(reply.headers)
        return ConnectError(f"rate limited by Vonage (429): {wait_text(wait_s, 'wait a minute')}, then run again")
    retryable = status >= 500
    return ConnectError(
        f"Vonage answered {status}: {detail}" + (f" ({invalid})" if invalid else ""), retryable=retryable
    )


def _retry_after(headers: dict[str, str]) -> float | None:
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None


def messages_webhooks(application: dict[str, Any]) -> dict[str, str | None]:
    """What the application's Messages capability holds now: inbound and status URL (with method), version."""
    messages = (application.get("capabilities") or {}).get("messages")
    if not isinstance(messages, dict):
        return {"inbound": None, "status": None, "version": None}
    webhooks = messages.get("webhooks") or {}

    def url(name: str) -> str | None:
        hook = webhooks.get(name) or {}
        address = hook.get("address")
        return f"{hook.get('http_method') or WEBHOOK_METHOD} {address}" if address else None

    return {"inbound": url("inbound_url"), "status": url("status_url"), "version": messages.get("version") or "v1"}


def wanted_webhooks(inbound_url: str, status_url: str) -> dict[str, str | None]:
    return {
        "inbound": f"{WEBHOOK_METHOD} {inbound_url}",
        "status": f"{WEBHOOK_METHOD} {status_url}",
        "version": WEBHOOK_VERSION,
    }


def update_body(application: dict[str, Any], inbound_url: str, status_url: str) -> dict[str, Any]:
    """The PUT body: the application as read, with the Messages webhooks and version set."""
    capabilities = copy.deepcopy(application.get("capabilities") or {})
    messages = capabilities.setdefault("messages", {})
    webhooks = messages.setdefault("webhooks", {})
    webhooks["inbound_url"] = {"address": inbound_url, "http_method": WEBHOOK_METHOD}
    webhooks["status_url"] = {"address": status_url, "http_method": WEBHOOK_METHOD}
    messages["version"] = WEBHOOK_VERSION
    body: dict[str, Any] = {"name": application.get("name") or "messenger-webhook", "capabilities": capabilities}
    if isinstance(application.get("privacy"), dict):
        body["privacy"] = application["privacy"]
    return body


@dataclass
class Applications:
    """`{base}/v2/applications/{id}` with Basic authentication."""

    base: str
    api_key: str
    api_secret: str
    caller: Caller

    def _headers(self) -> dict[str, str]:
        basic = base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()
        return {"authorization": f"Basic {basic}"}

    def _url(self, application_id: str) -> str:
        return f"{self.base.rstrip('/')}/v2/applications/{application_id}"

    def get(self, application_id: str) -> dict[str, Any]:
        return dict(self.caller.call("GET", self._url(application_id), vonage_error, headers=self._headers()))

    def put(self, application_id: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        return dict(self.caller.call("PUT", self._url(application_id), vonage_error, data, self._headers()))
