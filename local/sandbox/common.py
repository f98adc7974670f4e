"""What both fake providers share: the rejection a send answers with, and reading a bearer token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Log = Callable[[str], None]


class SandboxReject(Exception):  # noqa: N818 - a response, not an error of ours
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def bearer(headers: dict[str, str], *schemes: str) -> str | None:
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    return token.strip() or None if scheme.lower() in schemes else None
