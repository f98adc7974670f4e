"""The fake Graph Send API: `POST /{version}/{page_id}/messages`.

Checks the Page token (and `appsecret_proof` if sent) against events/sandbox-secrets.json and the body against
the layer's own Send API limits; answers `{"recipient_id", "message_id"}` or a Graph error `{"error": {"message",
"type", "code", "error_subcode", "fbtrace_id"}}`, then posts a signed echo, a delivery and a read event to the
webhook's `/meta/webhook`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as pysecrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from devkit import payloads
from devkit.lambda_code import add_layers_to_path
from devkit.sandbox_secrets import SANDBOX_APP_ID
from local.sandbox.callbacks import post_callback
from local.sandbox.common import SandboxReject, bearer
from local.sandbox.faults import Fault

add_layers_to_path()
from messenger.providers.meta.limits import message_problems  # noqa: E402 - needs the layer on sys.path

if TYPE_CHECKING:
    from local.sandbox.state import Sandbox

GRAPH_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<page_id>[^/]+)/messages$")
MESSAGING_TYPES = {"RESPONSE", "UPDATE", "MESSAGE_TAG"}
LIVE_TAGS = {"HUMAN_AGENT", "CUSTOMER_FEEDBACK"}
RETIRED_TAGS = {"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"}
SENDER_ACTIONS = {"typing_on", "typing_off", "mark_seen"}
PERMANENT_META = {
    10: (2018278, "(#10) This message is sent outside of allowed window."),
    100: (2018001, "(#100) No matching user found"),
    190: (463, "Error validating access token: Session has expired."),
    200: (None, "(#200) Permissions error"),
    551: (1545041, "(#551) This person isn't available right now."),
}
Sent = tuple[int, dict[str, Any], Callable[[], None] | None]


def graph_error(
    status: int, code: int, message: str, subcode: int | None = None, transient: bool = False
) -> SandboxReject:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "A" + pysecrets.token_urlsafe(12),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return SandboxReject(status, {"error": error})


def access_token(query: dict[str, str], headers: dict[str, str], body: dict[str, Any]) -> tuple[str, str | None]:
    """The call's access token (query, body or Authorization header) and its `appsecret_proof`, both taken out
    of `body`. Graph error 2500 when there is no token."""
    token = query.get("access_token") or body.pop("access_token", None) or bearer(headers, "oauth", "bearer")
    proof = query.get("appsecret_proof") or body.pop("appsecret_proof", None)
    if not token:
        raise graph_error(400, 2500, "An active access token must be used to query information about the current user.")
    return str(token), None if proof is None else str(proof)


def no_such_object(node: str, method: str = "post") -> SandboxReject:
    return graph_error(
        400,
        100,
        f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot "
        "be loaded due to missing permissions, or does not support this operation.",
        33,
    )


def check_token(sandbox: Sandbox, token: str, expected: str, proof: str | None) -> None:
    """`token` must be `expected`; an `appsecret_proof`, if sent, must be HMAC-SHA256(app secret, token)."""
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
    if proof is not None:
        wanted = hmac.new(sandbox.meta["app_secret"].encode(), expected.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(proof.encode(), wanted.encode()):
            raise graph_error(400, 100, "Invalid appsecret_proof provided in the API argument")


def send(sandbox: Sandbox, page_id: str, query: dict[str, str], headers: dict[str, str], body: dict[str, Any]) -> Sent:
    """Answer one Send API call: (status, body, the callbacks to post afterwards); SandboxReject if refused."""
    token, proof = access_token(query, headers, body)
    expected = sandbox.meta["page_tokens"].get(page_id)
    if expected is None:
        raise no_such_object(page_id)
    check_token(sandbox, token, expected, proof)
    validate_body(body)
    recipient = str(body["recipient"]["id"])
    fault = sandbox.faults.take("meta", recipient)
    if fault is not None:
        apply_fault(sandbox, fault)
    if "sender_action" in body:
        return 200, {"recipient_id": recipient}, None
    mid = "m_" + pysecrets.token_urlsafe(24)
    return (
        200,
        {"recipient_id": recipient, "message_id": mid},
        lambda: post_callbacks(sandbox, page_id, recipient, mid, body["message"]),
    )


def apply_fault(sandbox: Sandbox, fault: Fault) -> None:
    sandbox.log(f"[sandbox] injecting meta {fault.fault}" + (f" ({fault.code})" if fault.code else ""))
    if fault.fault == "timeout":
        time.sleep(fault.seconds)
        return
    if fault.fault == "5xx":
        raise graph_error(
            500, fault.code or 2, "An unexpected error has occurred. Please retry your request later.", transient=True
        )
    if fault.fault == "429":
        raise graph_error(429, fault.code or 4, "(#4) Application request limit reached", transient=True)
    if fault.fault == "613":
        raise graph_error(400, 613, "(#613) Calls to this API have exceeded the rate limit.", transient=True)
    code = fault.code or 100
    subcode, message = PERMANENT_META.get(code, (None, f"(#{code}) Permanent error injected by the sandbox"))
    raise graph_error(403 if code in (10, 200) else 400, code, message, subcode)


def callback_events(
    page_id: str, psid: str, mid: str, message: dict[str, Any], now: int
) -> list[tuple[str, dict[str, Any]]]:
    """The echo, delivery and read events Messenger sends after the message `mid` (`message`, as sent), in order."""
    echo: dict[str, Any] = {"is_echo": True, "app_id": SANDBOX_APP_ID, "mid": mid}
    for key in ("text", "attachment", "quick_replies", "metadata"):
        if key in message:
            echo[key] = message[key]
    return [
        ("echo", payloads.meta_message(page_id, psid, now, message=echo)),
        ("delivered", payloads.meta_message(psid, page_id, now + 1, delivery={"mids": [mid], "watermark": now})),
        ("read", payloads.meta_message(psid, page_id, now + 2, read={"watermark": now + 1})),
    ]


def post_callbacks(sandbox: Sandbox, page_id: str, psid: str, mid: str, message: dict[str, Any]) -> None:
    """The echo, delivery and read events Messenger sends after a message, each signed with the app secret."""
    for kind, event in callback_events(page_id, psid, mid, message, payloads.now_ms()):
        # A person reads a while after delivery; Meta's read event carries only a watermark, which the
        # webhook resolves against the stored outbound messages, so it must not overtake their write.
        time.sleep(sandbox.callback_delay_s + (sandbox.read_delay_s if kind == "read" else 0))
        if kind == "read":
            now = payloads.now_ms()
            event.update(timestamp=now, read={"watermark": now})
        body, headers = payloads.signed_meta(payloads.meta_page(event, page_id=page_id), sandbox.meta)
        post_callback(sandbox, "meta", kind, mid, "/meta/webhook", body, headers)


def validate_body(body: dict[str, Any]) -> None:
    def bad(message: str, subcode: int | None = None) -> SandboxReject:
        return graph_error(400, 100, f"(#100) {message}", subcode)

    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not isinstance(recipient.get("id"), str | int) or not recipient.get("id"):
        raise bad("The parameter recipient is required")
    if ("message" in body) == ("sender_action" in body):
        raise bad("Exactly one of message and sender_action must be set")
    if "sender_action" in body:
        if body["sender_action"] not in SENDER_ACTIONS:
            raise bad("param sender_action must be one of {typing_on, typing_off, mark_seen}")
        return
    _validate_messaging_type(body, bad)
    _validate_message(body["message"], bad)


def _validate_messaging_type(body: dict[str, Any], bad: Callable[..., SandboxReject]) -> None:
    kind = body.get("messaging_type")
    if kind not in MESSAGING_TYPES:
        raise bad("param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}")
    if kind == "MESSAGE_TAG":
        tag = body.get("tag")
        if tag in RETIRED_TAGS:
            raise bad(f"Tag {tag} is no longer supported", 2018344)
        if tag not in LIVE_TAGS:
            raise bad("param tag must be a supported message tag when messaging_type is MESSAGE_TAG")


def _validate_message(message: Any, bad: Callable[..., SandboxReject]) -> None:
    """The layer's own Send API limits (messenger/providers/meta/limits.py): one definition for both sides."""
    problems = message_problems(message)
    if problems:
        raise bad("param " + problems[0])
