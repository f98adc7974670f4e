"""Meta Graph Send API client: `POST {base}/{version}/{page_id}/messages` with the Page's token.

Knows nothing of Vonage. The token travels as the `access_token` query parameter with an
`appsecret_proof`; neither ever reaches a log line, an exception text or a stored item.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import requests

from messenger.handover import BOT_METADATA, bot_metadata
from messenger.messages import Button, InboundMessage, OutgoingMessage, Template, split_text
from messenger.observability import logger, tracer
from messenger.policy import MESSAGE_TAG, SendPolicy
from messenger.providers.meta.limits import MAX_QUICK_REPLIES, QUICK_REPLY_TITLE_MAX, TEXT_MAX, message_problems
from messenger.providers.session import DEFAULT_TIMEOUT, failed_before_sending, pooled_session, scrub
from messenger.secrets import MetaSecret
from messenger.sending import AmbiguousSendError, PermanentSendError, SendResult, TransientSendError

TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80006, 1200})
THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, 80006})
PERMANENT_CODES = frozenset({10, 100, 190, 368, 551}) | frozenset(range(200, 300))
AMBIGUOUS = frozenset({(1, 1357046)})
PROFILE_TIMEOUT = (1.0, 2.0)


def appsecret_proof(app_secret: str, token: str) -> str:
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def plan_messages(
    recipient_id: str, replies: list[OutgoingMessage], policy: SendPolicy, metadata: str = BOT_METADATA
) -> list[dict[str, Any]]:
    """The request bodies answering with `replies`, in order. PermanentSendError if one is invalid.

    Every message is checked against the Send API's documented limits (providers/meta/limits.py) here, so a
    reply Meta would refuse fails permanently with the reasons, before any request is sent.
    `metadata` comes back in Meta's echo: it tells our sends from a person's, and which message they answer.
    """
    base: dict[str, Any] = {"recipient": {"id": recipient_id}, "messaging_type": policy.messaging_type}
    if policy.messaging_type == MESSAGE_TAG:
        base["tag"] = policy.tag
    bodies: list[dict[str, Any]] = []
    for reply in replies:
        if reply.sender_action:
            bodies.append({"recipient": {"id": recipient_id}, "sender_action": reply.sender_action})
            continue
        if len(reply.quick_replies) > MAX_QUICK_REPLIES:
            raise PermanentSendError(
                f"{len(reply.quick_replies)} quick replies; Meta allows at most {MAX_QUICK_REPLIES}",
                code="too_many_quick_replies",
            )
        messages: list[dict[str, Any]] = (
            [{"text": chunk} for chunk in split_text(reply.text, TEXT_MAX)] if reply.text else []
        )
        if reply.attachment_url:
            messages.append(
                {
                    "attachment": {
                        "type": reply.attachment_type,
                        "payload": {"url": reply.attachment_url, "is_reusable": True},
                    }
                }
            )
        if reply.template is not None:
            messages.append({"attachment": {"type": "template", "payload": template_payload(reply.template)}})
        if reply.quick_replies:
            messages[-1]["quick_replies"] = [
                {"content_type": "text", "title": q.title[:QUICK_REPLY_TITLE_MAX], "payload": q.payload}
                for q in reply.quick_replies
            ]
        extra: dict[str, Any] = {}
        if reply.notification_type:
            extra["notification_type"] = reply.notification_type
        for index, message in enumerate(messages):
            # Meta returns `metadata` in the echo: it is how the webhook tells our sends from a person's.
            body = {**base, **extra, "message": {**message, "metadata": metadata}}
            if reply.reply_to_mid and index == 0:
                body["reply_to"] = {"mid": reply.reply_to_mid}
            bodies.append(body)
    for index, body in enumerate(bodies):
        problems = message_problems(body["message"]) if "message" in body else []
        if problems:
            raise PermanentSendError(
                f"message {index + 1} of {len(bodies)} exceeds Meta's Send API limits: " + "; ".join(problems[:5]),
                code="meta_invalid_message",
            )
    return bodies


def template_payload(template: Template) -> dict[str, Any]:
    def button(b: Button) -> dict[str, Any]:
        data: dict[str, Any] = {"type": b.type, "title": b.title}
        data.update({"url": b.url} if b.type == "web_url" else {"payload": b.payload})
        return data

    if template.type == "button":
        return {"template_type": "button", "text": template.text, "buttons": [button(b) for b in template.buttons]}
    elements = []
    for element in template.elements:
        data: dict[str, Any] = {"title": element.title}
        if element.subtitle:
            data["subtitle"] = element.subtitle
        if element.image_url:
            data["image_url"] = element.image_url
        if element.buttons:
            data["buttons"] = [button(b) for b in element.buttons]
        elements.append(data)
    return {"template_type": "generic", "elements": elements}


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw and raw.strip().isdigit():
        return float(raw)
    usage = response.headers.get("X-Business-Use-Case-Usage")
    if usage:
        try:
            minutes = max(
                int(entry.get("estimated_time_to_regain_access", 0))
                for entries in json.loads(usage).values()
                for entry in entries
            )
        except (ValueError, TypeError, AttributeError):
            return None
        return float(minutes * 60) if minutes else None
    return None


def classify_error(response: requests.Response, redact: tuple[str, ...] = ()) -> Exception:
    """The error a non-success answer means (per docs/replying.md's table)."""
    status = response.status_code
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    label = f"{code}/{subcode}" if subcode is not None else str(code)
    text = str(error.get("message", ""))
    for secret in redact:
        text = text.replace(secret, "[redacted]")
    text = scrub(text)[:200]
    reason = f"Meta error {label} (HTTP {status}): {text}" if code is not None else f"Meta HTTP {status}"
    kwargs: dict[str, Any] = {"provider_code": label if code is not None else None, "http_status": status}
    if (code, subcode) in AMBIGUOUS:
        return AmbiguousSendError(reason, code="meta_invalid_json_reply", **kwargs)
    if code in TRANSIENT_CODES:
        return TransientSendError(
            reason,
            code="meta_throttled" if code in THROTTLE_CODES else "meta_transient",
            retry_after=_retry_after(response),
            **kwargs,
        )
    if code == 10 and subcode == 2018278:
        return PermanentSendError(reason, code="meta_outside_window", **kwargs)
    if code == 190:
        return PermanentSendError(reason, code="meta_token_invalid", **kwargs)
    if code in PERMANENT_CODES:
        return PermanentSendError(reason, code=f"meta_{code}", **kwargs)
    if status == 429 or status >= 500:
        return TransientSendError(reason, code="meta_http_transient", retry_after=_retry_after(response), **kwargs)
    return PermanentSendError(reason, code="meta_rejected", **kwargs)


class MetaSendClient:
    def __init__(
        self,
        base: str,
        version: str,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        pool_size: int = 32,
    ) -> None:
        self.base = base.rstrip("/")
        self.version = version
        self.session = session or pooled_session(pool_size)
        self.timeout = timeout

    def url(self, page_id: str) -> str:
        return f"{self.base}/{self.version}/{page_id}/messages"

    def first_name(self, page_id: str, user_id: str, token: str, app_secret: str) -> str | None:
        """The user's first name from the Graph User Profile API (None when Meta does not give it)."""
        params = {"fields": "first_name", "access_token": token, "appsecret_proof": appsecret_proof(app_secret, token)}
        with tracer.provider.in_subsegment("## meta.profile") as subsegment:
            subsegment.put_annotation("page_id", page_id)
            try:
                response = self.session.get(
                    f"{self.base}/{self.version}/{user_id}", params=params, timeout=PROFILE_TIMEOUT
                )
            except requests.RequestException as exc:
                raise LookupError(f"profile look-up failed ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise LookupError(f"profile look-up answered HTTP {response.status_code}")
        try:
            name = response.json().get("first_name")
        except (ValueError, AttributeError):
            return None
        return name if isinstance(name, str) and name.strip() else None

    def post(self, page_id: str, token: str, app_secret: str, body: dict[str, Any]) -> SendResult:
        params = {"access_token": token, "appsecret_proof": appsecret_proof(app_secret, token)}
        started = time.perf_counter()
        with tracer.provider.in_subsegment("## meta.send") as subsegment:
            subsegment.put_annotation("page_id", page_id)
            try:
                response = self.session.post(self.url(page_id), params=params, json=body, timeout=self.timeout)
            except requests.RequestException as exc:
                # str(exc) may quote the URL with the token: only the exception type is kept.
                kind = type(exc).__name__
                if failed_before_sending(exc):
                    raise TransientSendError(f"Meta not reached ({kind})", code="meta_unreachable") from None
                raise AmbiguousSendError(
                    f"Meta request may have been delivered ({kind})", code="meta_timeout_after_send"
                ) from None
        latency = (time.perf_counter() - started) * 1000
        if response.status_code >= 300:
            error = classify_error(response, redact=(token, params["appsecret_proof"]))
            if getattr(error, "code", "") == "meta_token_invalid":
                logger.error(
                    "operator action: the Page access token is invalid or expired; "
                    "put a new one in the Meta secret's page_tokens",
                    extra={"page_id": page_id},
                )
            raise error
        try:
            data = response.json()
        except ValueError:
            raise AmbiguousSendError(
                "Meta answered success without valid JSON",
                code="meta_invalid_json_reply",
                http_status=response.status_code,
            ) from None
        message_id = data.get("message_id") if isinstance(data, dict) else None
        if "message" in body and not message_id:
            raise AmbiguousSendError(
                "Meta answered success without a message_id",
                code="meta_no_message_id",
                http_status=response.status_code,
            )
        return SendResult(message_id=message_id, latency_ms=latency)


class MetaSender:
    """The reply pipeline's port onto Meta: plan the bodies, post each with the Page's token."""

    provider = "meta"
    initial_status = "sent"
    has_profiles = True

    def __init__(self, client: MetaSendClient, secret: Callable[[], MetaSecret]) -> None:
        self.client = client
        self.secret = secret

    def plan(self, inbound: InboundMessage, replies: list[OutgoingMessage], policy: SendPolicy) -> list[dict[str, Any]]:
        return plan_messages(inbound.user_id, replies, policy, bot_metadata(inbound.event_id))

    def body_text(self, body: dict[str, Any]) -> str | None:
        text = (body.get("message") or {}).get("text")
        return str(text) if text else None

    def first_name(self, inbound: InboundMessage) -> str | None:
        secret = self.secret()
        token = secret.page_tokens.get(inbound.page_id)
        if not token:
            return None
        return self.client.first_name(inbound.page_id, inbound.user_id, token, secret.app_secret)

    def post(self, inbound: InboundMessage, body: dict[str, Any]) -> SendResult:
        secret = self.secret()
        token = secret.page_tokens.get(inbound.page_id)
        if not token:
            raise PermanentSendError(
                f"no Page access token for page {inbound.page_id} in the Meta secret's page_tokens",
                code="meta_missing_page_token",
            )
        return self.client.post(inbound.page_id, token, secret.app_secret, body)
