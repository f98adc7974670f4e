"""The fake Vonage Application API v2: `GET` and `PUT /v2/applications/{id}`, as `make connect` uses them.

Authenticated like Vonage's: HTTP Basic `api_key:api_secret`, the key from events/sandbox-secrets.json and
the sandbox's own API secret below (the fixed secret shape has none). The one application is the sandbox
secret's `application_id`, with no capability set at first. The PUT needs `name` and checks the Messages
capability: `webhooks.inbound_url` / `status_url` as `{"address": http(s) URL, "http_method": "POST"}`,
`version` `v0.1` or `v1`; it replaces the name and the capabilities and keeps the key. Errors are RFC 7807.
"""

from __future__ import annotations

import base64
import copy
import hmac
from typing import TYPE_CHECKING, Any

from devkit.sandbox_secrets import SANDBOX_API_SECRET
from local.sandbox.vonage import VONAGE_WEBHOOK_VERSIONS, vonage_error

if TYPE_CHECKING:
    from local.sandbox.state import Sandbox

Answer = tuple[int, dict[str, Any]]


def handle(sandbox: Sandbox, method: str, application_id: str, headers: dict[str, str], body: Any) -> Answer:
    _authenticate(sandbox, headers)
    applications = sandbox.vonage_apps
    if application_id != applications.application["id"]:
        raise vonage_error(404, "Not Found", f"Application {application_id} could not be found", "#not-found")
    if method == "GET":
        return 200, applications.snapshot()
    if method != "PUT":
        raise vonage_error(405, "Method Not Allowed", f"{method} is not supported here", "#method-not-allowed")
    invalid = validate_update(body)
    if invalid:
        raise vonage_error(
            400, "Bad Request", "The request failed due to validation errors", "/application.v2#validation", invalid
        )
    with applications.lock:
        applications.application.update(name=body["name"], capabilities=copy.deepcopy(body.get("capabilities") or {}))
        if isinstance(body.get("privacy"), dict):
            applications.application["privacy"] = dict(body["privacy"])
    return 200, applications.snapshot()


def _authenticate(sandbox: Sandbox, headers: dict[str, str]) -> None:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    try:
        key, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        key, secret = "", ""
    ok = (
        scheme.lower() == "basic"
        and hmac.compare_digest(key.encode(), sandbox.vonage["api_key"].encode())
        and hmac.compare_digest(secret.encode(), SANDBOX_API_SECRET.encode())
    )
    if not ok:
        raise vonage_error(401, "Unauthorized", "You did not provide correct credentials.", "#unauthorized")


def validate_update(body: Any) -> list[dict[str, str]]:
    if not isinstance(body, dict):
        return [{"name": "body", "reason": "must be a JSON object"}]
    invalid = []
    if not isinstance(body.get("name"), str) or not body["name"].strip():
        invalid.append({"name": "name", "reason": "is required"})
    capabilities = body.get("capabilities", {})
    if not isinstance(capabilities, dict):
        return [*invalid, {"name": "capabilities", "reason": "must be an object"}]
    messages = capabilities.get("messages")
    if messages is None:
        return invalid
    if not isinstance(messages, dict):
        return [*invalid, {"name": "capabilities.messages", "reason": "must be an object"}]
    version = messages.get("version")
    if version is not None and version not in VONAGE_WEBHOOK_VERSIONS:
        invalid.append(
            {"name": "capabilities.messages.version", "reason": f"must be one of {sorted(VONAGE_WEBHOOK_VERSIONS)}"}
        )
    webhooks = messages.get("webhooks") or {}
    for hook in ("inbound_url", "status_url"):
        value = webhooks.get(hook)
        if value is None:
            continue
        name = f"capabilities.messages.webhooks.{hook}"
        address = value.get("address") if isinstance(value, dict) else None
        if not isinstance(address, str) or not address.startswith(("https://", "http://")):
            invalid.append({"name": f"{name}.address", "reason": "must be an http(s) URL"})
        if isinstance(value, dict) and value.get("http_method", "POST") != "POST":
            invalid.append({"name": f"{name}.http_method", "reason": "must be one of: POST"})
    return invalid
