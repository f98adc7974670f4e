"""One small JSON-over-HTTP client (urllib) for the tools and the local stack's own scripts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, NamedTuple


class Reply(NamedTuple):
    status: int
    body: Any  # the JSON body, or its text when it is not JSON, or None when empty
    headers: dict[str, str]  # lower-case names


def request(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> Reply:
    """One request; its status, body and headers. HTTP errors are answers, not exceptions; no answer at all
    (refused, reset, timed out) raises OSError."""
    outgoing = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout) as response:  # noqa: S310 - the caller's own URL
            status, data, received = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, data, received = exc.code, exc.read(), exc.headers
    names = {key.lower(): value for key, value in (received or {}).items()}
    try:
        return Reply(status, json.loads(data) if data else None, names)
    except ValueError:
        return Reply(status, data.decode(errors="replace"), names)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """One request; returns (status, JSON body or text). HTTP errors are answers, not exceptions; no answer at
    all (refused, reset, timed out) raises OSError."""
    reply = request(method, url, body, headers, timeout)
    return reply.status, reply.body
