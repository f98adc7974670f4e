"""The fake Vonage Messages API: `POST /v1/messages`.

Checks the RS256 application JWT with the public half of the sandbox private key and the body schema; answers
202 `{"message_uuid"}` or an RFC 7807 error, then posts signed `submitted`, `delivered` and `read` statuses to
`/vonage/status` (or the message's `webhook_url`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jwt

from devkit import payloads
from local.sandbox.callbacks import post_callback
from local.sandbox.common import SandboxReject, bearer
from local.sandbox.faults import Fault

if TYPE_CHECKING:
    from local.sandbox.state import Sandbox

VONAGE_TYPES = {"text", "image", "audio", "video", "file"}
VONAGE_CATEGORIES = {"response", "update", "message_tag"}
VONAGE_WEBHOOK_VERSIONS = {"v0.1", "v1"}
Sent = tuple[int, dict[str, Any], Callable[[], None] | None]


def vonage_error(
    status: int, title: str, detail: str, kind: str, invalid: list[dict[str, str]] | None = None
) -> SandboxReject:
    body: dict[str, Any] = {
        "type": f"https://developer.vonage.com/api-errors{kind}",
        "title": title,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    if invalid:
        body["invalid_parameters"] = invalid
    return SandboxReject(status, body)


def send(sandbox: Sandbox, headers: dict[str, str], body: dict[str, Any]) -> Sent:
    """Answer one Messages API call: (status, body, the callbacks to post afterwards); SandboxReject if refused."""
    token = bearer(headers, "bearer")
    if not token:
        raise vonage_error(401, "Unauthorized", "You did not provide correct credentials.", "#unauthorized")
    try:
        claims = jwt.decode(
            token,
            sandbox.vonage_public_key,
            algorithms=["RS256"],
            options={"require": ["iat", "jti", "application_id"], "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise vonage_error(401, "Unauthorized", f"Invalid token ({type(exc).__name__}).", "#unauthorized") from None
    if claims.get("application_id") != sandbox.vonage["application_id"]:
        raise vonage_error(401, "Unauthorized", "The application_id does not match.", "#unauthorized")
    if float(claims["iat"]) > time.time() + 60:
        raise vonage_error(401, "Unauthorized", "iat is in the future.", "#unauthorized")
    invalid = validate_body(body, sandbox.pages)
    if invalid:
        raise vonage_error(
            422, "Invalid params", "Your request parameters did not validate.", "/messages#1150", invalid
        )
    fault = sandbox.faults.take("vonage", str(body["to"]))
    if fault is not None:
        apply_fault(sandbox, fault)
    message_uuid = str(uuid.uuid4())
    return 202, {"message_uuid": message_uuid}, lambda: post_callbacks(sandbox, body, message_uuid)


def apply_fault(sandbox: Sandbox, fault: Fault) -> None:
    sandbox.log(f"[sandbox] injecting vonage {fault.fault}" + (f" ({fault.code})" if fault.code else ""))
    if fault.fault == "timeout":
        time.sleep(fault.seconds)
        return
    if fault.fault == "5xx":
        raise vonage_error(fault.code or 500, "Internal Error", "The server encountered an error.", "#internal-error")
    if fault.fault in ("429", "613"):
        raise vonage_error(429, "Rate Limit Hit", "Please wait, then retry your request", "#throttled")
    status = fault.code or 422
    titles = {401: "Unauthorized", 402: "Low balance", 403: "Forbidden", 404: "Not Found"}
    raise vonage_error(
        status,
        titles.get(status, "Invalid params"),
        "Permanent error injected by the sandbox.",
        "/messages#1150" if status == 422 else f"#{status}",
    )


def post_callbacks(sandbox: Sandbox, request: dict[str, Any], message_uuid: str) -> None:
    """The `submitted`, `delivered` and `read` statuses, each with a signed JWT."""
    path = "/vonage/status"
    url = request.get("webhook_url")
    for status in ("submitted", "delivered", "read"):
        time.sleep(sandbox.callback_delay_s)
        payload: dict[str, Any] = {
            "message_uuid": message_uuid,
            "to": request["to"],
            "from": request["from"],
            "timestamp": payloads.vonage_time(),
            "status": status,
            "channel": "messenger",
        }
        if request.get("client_ref"):
            payload["client_ref"] = request["client_ref"]
        if status == "submitted":
            payload["usage"] = {"currency": "EUR", "price": "0.0000"}
        body, headers = payloads.signed_vonage(payload, sandbox.vonage, application_id=sandbox.vonage["application_id"])
        post_callback(sandbox, "vonage", status, message_uuid, url or path, body, headers)


def validate_body(body: dict[str, Any], pages: set[str]) -> list[dict[str, str]]:
    invalid: list[dict[str, str]] = []
    if body.get("channel") != "messenger":
        invalid.append({"name": "channel", "reason": "must be messenger"})
    kind = body.get("message_type")
    if kind not in VONAGE_TYPES:
        invalid.append({"name": "message_type", "reason": f"must be one of {sorted(VONAGE_TYPES)}"})
    for name in ("to", "from"):
        value = body.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= 50:
            invalid.append({"name": name, "reason": "must be a string of 1-50 characters"})
    if isinstance(body.get("from"), str) and body["from"] not in pages:
        invalid.append({"name": "from", "reason": "is not a Page linked to this application (swapped to/from?)"})
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 640:
            invalid.append({"name": "text", "reason": "must be 1-640 characters"})
    elif kind in VONAGE_TYPES:
        media = body.get(kind)
        if not isinstance(media, dict) or not isinstance(media.get("url"), str):
            invalid.append({"name": f"{kind}.url", "reason": "is required"})
    messenger = body.get("messenger") or {}
    if not isinstance(messenger, dict):
        invalid.append({"name": "messenger", "reason": "must be an object"})
    else:
        category = messenger.get("category", "response")
        if category not in VONAGE_CATEGORIES:
            invalid.append({"name": "messenger.category", "reason": "invalid value"})
        if category == "message_tag" and not messenger.get("tag"):
            invalid.append({"name": "messenger.tag", "reason": "is required for message_tag"})
    client_ref = body.get("client_ref")
    if client_ref is not None and (not isinstance(client_ref, str) or len(client_ref) > 100):
        invalid.append({"name": "client_ref", "reason": "must be at most 100 characters"})
    invalid += _validate_vonage_webhook(body)
    return invalid


def _validate_vonage_webhook(body: dict[str, Any]) -> list[dict[str, str]]:
    """`webhook_version` is `v0.1` or `v1`; `webhook_url` an http(s) URL (per-message status overrides)."""
    invalid: list[dict[str, str]] = []
    version = body.get("webhook_version")
    if version is not None and version not in VONAGE_WEBHOOK_VERSIONS:
        invalid.append({"name": "webhook_version", "reason": f"must be one of {sorted(VONAGE_WEBHOOK_VERSIONS)}"})
    url = body.get("webhook_url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
        invalid.append({"name": "webhook_url", "reason": "must be an http(s) URL"})
    return invalid
