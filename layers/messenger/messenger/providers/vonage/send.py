"""Vonage Messages API client for the messenger channel: `POST {base}/v1/messages` with an app JWT.

Knows nothing of Meta's Send API. Vonage's Messenger text limit is 640 characters; quick replies and
sender actions have no Messages API equivalent and are left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from messenger.messages import InboundMessage, OutgoingMessage, split_text
from messenger.observability import logger, tracer
from messenger.policy import MESSAGE_TAG, SendPolicy
from messenger.providers.session import DEFAULT_TIMEOUT, failed_before_sending, pooled_session, scrub
from messenger.providers.vonage.auth import AppJwtCache
from messenger.secrets import VonageSecret
from messenger.sending import AmbiguousSendError, PermanentSendError, SendResult, TransientSendError

TEXT_LIMIT = 640
CLIENT_REF_LIMIT = 100


def plan_messages(inbound: InboundMessage, replies: list[OutgoingMessage], policy: SendPolicy) -> list[dict[str, Any]]:
    messenger: dict[str, Any] = {"category": "response"}
    if policy.messaging_type == MESSAGE_TAG:
        messenger = {"category": "message_tag", "tag": policy.tag}
    base = {
        "channel": "messenger",
        "from": inbound.page_id,
        "to": inbound.user_id,
        "messenger": messenger,
        "client_ref": inbound.event_id[:CLIENT_REF_LIMIT],
    }
    bodies: list[dict[str, Any]] = []
    for reply in replies:
        if reply.sender_action:
            continue  # no Messages API equivalent
        text = reply.text or (reply.template.as_text() if reply.template else None)
        if text:
            chunks = split_text(text, TEXT_LIMIT)
            bodies.extend({"message_type": "text", **base, "text": chunk} for chunk in chunks)
        if reply.attachment_url:
            kind = reply.attachment_type or "file"
            bodies.append({"message_type": kind, **base, kind: {"url": reply.attachment_url}})
    return bodies


def classify_error(response: requests.Response) -> Exception:
    status = response.status_code
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    title = scrub(str(problem.get("title", "")))[:120]
    detail = scrub(str(problem.get("detail", "")))[:200]
    reason = f"Vonage HTTP {status}: {title} {detail}".strip()
    kwargs: dict[str, Any] = {
        "provider_code": str(problem.get("type", "")).rsplit("/", 1)[-1] or None,
        "http_status": status,
    }
    if status == 429 or status >= 500:
        retry_after = response.headers.get("Retry-After", "")
        return TransientSendError(
            reason,
            code="vonage_throttled" if status == 429 else "vonage_server_error",
            retry_after=float(retry_after) if retry_after.isdigit() else None,
            **kwargs,
        )
    if status == 401:
        return PermanentSendError(reason, code="vonage_unauthorized", **kwargs)
    return PermanentSendError(reason, code=f"vonage_{status}", **kwargs)


class VonageSendClient:
    def __init__(
        self,
        base: str,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        pool_size: int = 32,
        jwts: AppJwtCache | None = None,
    ) -> None:
        self.base = base.rstrip("/")
        self.session = session or pooled_session(pool_size)
        self.timeout = timeout
        self.jwts = jwts or AppJwtCache()

    @property
    def url(self) -> str:
        return f"{self.base}/v1/messages"

    def post(self, application_id: str, private_key: str, body: dict[str, Any]) -> SendResult:
        token = self.jwts.signer(application_id, private_key).token()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        started = time.perf_counter()
        with tracer.provider.in_subsegment("## vonage.send"):
            try:
                response = self.session.post(self.url, json=body, headers=headers, timeout=self.timeout)
            except requests.RequestException as exc:
                kind = type(exc).__name__
                if failed_before_sending(exc):
                    raise TransientSendError(f"Vonage not reached ({kind})", code="vonage_unreachable") from None
                raise AmbiguousSendError(
                    f"Vonage request may have been delivered ({kind})", code="vonage_timeout_after_send"
                ) from None
        latency = (time.perf_counter() - started) * 1000
        if response.status_code >= 300:
            error = classify_error(response)
            if getattr(error, "code", "") == "vonage_unauthorized":
                logger.error(
                    "operator action: Vonage refused the application JWT; check the Vonage secret's "
                    "application_id and private_key"
                )
            raise error
        try:
            message_uuid = response.json().get("message_uuid")
        except (ValueError, AttributeError):
            message_uuid = None
        if not message_uuid:
            raise AmbiguousSendError(
                "Vonage accepted the message without a message_uuid",
                code="vonage_no_message_uuid",
                http_status=response.status_code,
            )
        return SendResult(message_id=str(message_uuid), latency_ms=latency)


class VonageSender:
    provider = "vonage"
    initial_status = "submitted"
    has_profiles = False  # the Messages API has no profile look-up

    def __init__(self, client: VonageSendClient, secret: Callable[[], VonageSecret]) -> None:
        self.client = client
        self.secret = secret

    def plan(self, inbound: InboundMessage, replies: list[OutgoingMessage], policy: SendPolicy) -> list[dict[str, Any]]:
        return plan_messages(inbound, replies, policy)

    def post(self, inbound: InboundMessage, body: dict[str, Any]) -> SendResult:
        secret = self.secret()
        return self.client.post(secret.application_id, secret.private_key, body)

    def first_name(self, inbound: InboundMessage) -> str | None:
        return None

    def body_text(self, body: dict[str, Any]) -> str | None:
        text = body.get("text")
        return str(text) if text else None
