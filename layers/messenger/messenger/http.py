"""HTTP details shared by the webhook routes: the raw body bytes and the error -> status mapping."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from messenger.errors import (
    BadRequestError,
    ConfigError,
    HandshakeRejectedError,
    MessengerError,
    PayloadTooLargeError,
    SecretUnavailableError,
    SignatureInvalidError,
    SignatureMissingError,
    StorageError,
    UnsignedCallbackError,
)

STATUS_BY_ERROR: dict[type[MessengerError], int] = {
    BadRequestError: 400,
    SignatureMissingError: 401,
    SignatureInvalidError: 401,
    HandshakeRejectedError: 403,
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


def raw_body(event: dict[str, Any], max_bytes: int) -> bytes:
    """The exact bytes the provider signed: API Gateway base64-encodes bodies it does not treat as text."""
    body = event.get("body") or ""
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
