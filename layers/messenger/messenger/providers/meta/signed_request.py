"""Meta's `signed_request` (data-deletion callback): `<sig>.<payload>`, both base64url without padding."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from messenger.errors import BadRequestError, SignatureInvalidError, SignatureMissingError


def _b64url_decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise SignatureInvalidError("signed_request is not base64url") from None


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_signed_request(app_secret: str, payload: dict[str, Any]) -> str:
    """What Meta posts for `payload` (tests, the sandbox and the sample events use it)."""
    body = _b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(app_secret.encode(), body.encode(), hashlib.sha256).digest()
    return f"{_b64url_encode(signature)}.{body}"


def parse_signed_request(app_secret: str, signed_request: str | None) -> dict[str, Any]:
    """Verify and decode; return the payload (with a non-empty string `user_id`) or raise."""
    if not signed_request:
        raise SignatureMissingError("signed_request missing")
    if not app_secret:
        raise SignatureInvalidError("no app secret configured")
    signature_segment, dot, payload_segment = signed_request.strip().partition(".")
    if not dot or not signature_segment or not payload_segment:
        raise SignatureInvalidError("signed_request is not <signature>.<payload>")
    signature = _b64url_decode(signature_segment)
    expected = hmac.new(app_secret.encode(), payload_segment.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise SignatureInvalidError("signed_request signature does not match")
    try:
        payload = json.loads(_b64url_decode(payload_segment))
    except (ValueError, RecursionError):
        raise BadRequestError("signed_request payload is not JSON") from None
    if not isinstance(payload, dict):
        raise BadRequestError("signed_request payload is not an object")
    if str(payload.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise SignatureInvalidError("signed_request algorithm must be HMAC-SHA256")
    user_id = payload.get("user_id")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id:
        raise BadRequestError("signed_request has no user_id")
    payload["user_id"] = user_id
    return payload
