"""One small JSON-over-HTTP client (urllib) for the tools and the local stack's own scripts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, Any]:
    """One request; returns (status, JSON body or text). HTTP errors are answers, not exceptions; no answer at
    all (refused, reset, timed out) raises OSError."""
    request = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the caller's own URL
            status, data = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data.decode(errors="replace")
