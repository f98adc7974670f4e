"""Calling the providers' configuration APIs: bounded retries, and errors a person can act on.

Every call goes through `Caller.call`: no answer, a 5xx or an error the provider marks transient is retried
(`attempts` in all, with a doubling pause); a rate limit is not retried but says how long to wait; anything else
is a `ConnectError` whose message names the cause and the fix. Messages never hold a URL's query (tokens travel
there), a header or a secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from devkit.http_client import Reply, request

DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 1.0


class ConnectError(Exception):
    """A provider call failed; the message is safe to print. `wait_s`: how long a rate limit lasts (if known)."""

    def __init__(self, message: str, *, retryable: bool = False, wait_s: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.wait_s = wait_s


Classify = Callable[[Reply], ConnectError]


def wait_text(wait_s: float | None, default: str) -> str:
    if wait_s is None:
        return default
    minutes = max(1, round(wait_s / 60))
    return f"wait {minutes} minute{'s' if minutes != 1 else ''}"


@dataclass
class Caller:
    """Makes one provider call with bounded retries (`attempts` in all)."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff_s: float = DEFAULT_BACKOFF_S
    timeout_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    calls: int = 0  # every request sent, retries included

    def call(
        self,
        method: str,
        url: str,
        classify: Classify,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The JSON answer of a 2xx; ConnectError otherwise (after the retries a transient failure gets)."""
        for attempt in range(1, self.attempts + 1):
            self.calls += 1
            try:
                reply = request(method, url, body, headers, self.timeout_s)
            except OSError as exc:
                error = ConnectError(f"no answer from {urlsplit(url).netloc} ({type(exc).__name__})", retryable=True)
            else:
                if 200 <= reply.status < 300:
                    return reply.body
                error = classify(reply)
            if not error.retryable or attempt == self.attempts:
                if error.retryable and self.attempts > 1:
                    raise ConnectError(f"{error} (gave up after {self.attempts} attempts)") from None
                raise error
            self.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")
