"""The HTTP request as the webhook routes read it: the raw body bytes, form fields, the public base URL, and
the error -> status mapping."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from messenger.errors import (
    BadRequestError,
    ConfigError,
    HandshakeRejectedError,
    MessengerError,
    NotFoundError,
    PayloadTooLargeError,
    SecretUnavailableError,
    SignatureInvalidError,
    SignatureMissingError,
    StorageError,
    UnsignedCallbackError,
)


class Post:
    """A POST as its route reads it: the exact bytes the provider signed (size-checked, base64-decoded if need
    be), its headers (names in any case) and the API Gateway event it came in. (A plain class: a dataclass or
    a NamedTuple costs every cold start more, docs/design.md.)"""

    __slots__ = ("body", "event", "headers")

    def __init__(self, body: bytes, headers: Mapping[str, str], event: Mapping[str, Any]) -> None:
        self.body = body
        self.headers = headers
        self.event = event


STATUS_BY_ERROR: dict[type[MessengerError], int] = {
    BadRequestError: 400,
    SignatureMissingError: 401,
    SignatureInvalidError: 401,
    HandshakeRejectedError: 403,
    NotFoundError: 404,
    PayloadTooLargeError: 413,
    ConfigError: 500,
    SecretUnavailableError: 503,
    StorageError: 503,
    UnsignedCallbackError: 503,
}


def status_for(error: MessengerError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def raw_body(event: Mapping[str, Any], max_bytes: int) -> bytes:
    """The exact bytes the provider signed: API Gateway base64-encodes bodies it does not treat as text."""
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise BadRequestError("body is not a string")
    if event.get("isBase64Encoded"):
        if len(body) > (max_bytes * 4) // 3 + 4:
            raise PayloadTooLargeError("body too large")
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequestError("body is not valid base64") from None
    else:
        data = body.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise PayloadTooLargeError("body too large")
    return data


def form_fields(body: bytes) -> dict[str, list[str]]:
    """An application/x-www-form-urlencoded body (Meta's data-deletion callback) as lists of values."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("form body is not UTF-8") from None
    try:
        return parse_qs(text, keep_blank_values=False, max_num_fields=20)
    except ValueError:
        raise BadRequestError("form body has too many fields") from None


def public_base_url(event: Mapping[str, Any]) -> str:
    """The URL callers used to reach this API (for links we hand back, like the deletion status page)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    host = headers.get("host") or event.get("requestContext", {}).get("domainName", "localhost")
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip()
    return f"{scheme}://{host}"
