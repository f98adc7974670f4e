"""Signed callbacks to the webhook, re-sent on each provider's retry schedule until accepted or given up."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devkit.http_client import http

if TYPE_CHECKING:
    from local.sandbox.state import Sandbox


@dataclass(frozen=True)
class RetrySchedule:
    """How a provider re-sends a callback the webhook did not accept, in the provider's real seconds."""

    immediate: int  # retries sent at once, before the backoff starts
    first_s: float  # the first backoff delay; it doubles up to max_delay_s
    max_delay_s: float
    window_s: float  # no retry starts later than this after the first attempt
    only_429_5xx: bool  # False: any answer but 2xx (and no answer) is retried

    def retryable(self, status: int) -> bool:
        """`status` 0 = no answer (connection refused, reset or timed out): both providers retry it."""
        if self.only_429_5xx:
            return status == 0 or status == 429 or status >= 500
        return not 200 <= status < 300

    def delays(self, time_scale: float = 1.0) -> list[float]:
        """The waits before each retry, compressed `time_scale` times."""
        delays = [0.0] * self.immediate
        elapsed, delay = 0.0, self.first_s
        while elapsed + delay <= self.window_s:
            delays.append(delay / time_scale)
            elapsed += delay
            delay = min(delay * 2, self.max_delay_s)
        return delays


# Meta: "retries a few times at once", then with decreasing frequency; after 1 h of failures Messenger
# unsubscribes the app (docs/meta-messenger spec: Delivery semantics). The backoff steps are not published.
META_CALLBACK_RETRY = RetrySchedule(immediate=2, first_s=30, max_delay_s=900, window_s=3600, only_429_5xx=False)
# Vonage: only 429 and 5xx are retried, first after ~5 s, doubling up to every 15 min, discarded after 24 h.
VONAGE_CALLBACK_RETRY = RetrySchedule(immediate=0, first_s=5, max_delay_s=900, window_s=86400, only_429_5xx=True)
CALLBACK_RETRY = {"meta": META_CALLBACK_RETRY, "vonage": VONAGE_CALLBACK_RETRY}
CALLBACK_TIMEOUT_S = {"meta": 20.0, "vonage": 15.0}  # how long each provider waits for the webhook's answer


def post_callback(
    sandbox: Sandbox, provider: str, kind: str, message_id: str, target: str, body: bytes, headers: dict[str, str]
) -> None:
    """POST one callback; re-send it on the provider's retry schedule until accepted or given up."""
    if not sandbox.callbacks_enabled or (sandbox.webhook_base is None and not target.startswith("http")):
        return
    url = target if target.startswith("http") else f"{sandbox.webhook_base}{target}"
    schedule = CALLBACK_RETRY[provider]
    delays = schedule.delays(sandbox.retry_time_scale)
    attempts, status = 0, 0
    while True:
        attempts += 1
        status = deliver(sandbox, url, body, headers, CALLBACK_TIMEOUT_S[provider])
        if 200 <= status < 300 or not schedule.retryable(status) or attempts > len(delays):
            break
        wait = delays[attempts - 1]
        sandbox.log(
            f"[sandbox] {provider} callback {kind} for {message_id[:14]}… -> {status or 'no answer'}; "
            f"retry {attempts} in {wait:.2f}s"
        )
        time.sleep(wait)
    sandbox.add_callback(
        {
            "provider": provider,
            "kind": kind,
            "message_id": message_id,
            "url": url,
            "status": status,
            "attempts": attempts,
            "at": time.time(),
        }
    )
    outcome = (
        ""
        if 200 <= status < 300
        else (
            " (not retried: the provider retries only 429 and 5xx)"
            if not schedule.retryable(status)
            else f" (given up after {attempts} attempts: the retry window is over)"
        )
    )
    sandbox.log(f"[sandbox] {provider} callback {kind} for {message_id[:14]}… -> {status}{outcome}")


def deliver(sandbox: Sandbox, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """One POST; the HTTP status, or 0 when there was no answer."""
    try:
        return http("POST", url, body, headers, timeout)[0]
    except OSError as exc:
        sandbox.log(f"[sandbox] callback to {url} got no answer: {exc}")
        return 0
