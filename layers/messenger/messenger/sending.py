"""Sending, provider-neutral: the outcome classes every sender raises, the retry policy, the sender port."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Protocol

from messenger.errors import MessengerError
from messenger.messages import InboundMessage, OutgoingMessage
from messenger.policy import SendPolicy


@dataclass(frozen=True, slots=True)
class SendResult:
    """A provider accepted a request. `message_id` is None for requests without one (sender actions)."""

    message_id: str | None
    latency_ms: float = 0.0


class SendError(MessengerError):
    """A send did not succeed. `code` is a short identifier; `provider_code` the provider's own, if any.

    The message text never contains a token or a URL with its query string.
    """

    code = "send_failed"

    def __init__(
        self,
        reason: str,
        *,
        code: str | None = None,
        provider_code: Any = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        if code:
            self.code = code
        self.reason = reason
        self.provider_code = provider_code
        self.http_status = http_status
        self.retry_after = retry_after

    def details(self) -> dict[str, Any]:
        return {
            "error_class": type(self).__name__,
            "code": self.code,
            "reason": self.reason[:300],
            "provider_code": None if self.provider_code is None else str(self.provider_code),
            "http_status": self.http_status,
        }


class TransientSendError(SendError):
    """Nothing was delivered and trying again later may work (5xx, 429, throttling, no connection)."""

    code = "transient"


class PermanentSendError(SendError):
    """Trying again will not help (bad request, no permission, outside the window, invalid token)."""

    code = "permanent"


class AmbiguousSendError(SendError):
    """The request may have been delivered (timeout after sending, Meta 1/1357046): never re-sent blindly."""

    code = "ambiguous"


class Sender(Protocol):
    """One provider's way to answer: everything the reply pipeline asks of a provider.

    `plan` must be deterministic: a retry resumes at a part index. `initial_status` is the status an accepted
    message is recorded with (status callbacks move it on). `first_name` is only asked when `has_profiles`.
    """

    provider: str
    initial_status: str
    has_profiles: bool

    def plan(
        self, inbound: InboundMessage, replies: list[OutgoingMessage], policy: SendPolicy
    ) -> list[dict[str, Any]]: ...

    def post(self, inbound: InboundMessage, body: dict[str, Any]) -> SendResult: ...

    def first_name(self, inbound: InboundMessage) -> str | None: ...

    def body_text(self, body: dict[str, Any]) -> str | None:
        """The text of a planned body, kept on the outbound item (None for media and sender actions)."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter, inside what the invocation has left."""

    max_attempts: int = 4
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    # Time kept free at the end of the invocation: one more request (its read timeout) plus bookkeeping.
    reserve_ms: int = 12_000

    def delay(self, attempt: int, retry_after: float | None = None, rand: random.Random | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        delay = (rand or random).uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def may_retry(self, attempt: int, delay_s: float, remaining_ms: int | None) -> bool:
        if attempt >= self.max_attempts or delay_s > self.max_delay_s:
            return False
        if remaining_ms is None:
            return True
        return remaining_ms - delay_s * 1000 > self.reserve_ms
