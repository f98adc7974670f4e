"""Verify Vonage's signed callbacks: `Authorization: Bearer <HS256 JWT>` over the raw body.

The SDK's own check covers the signature only; we also bind the token to this body (`payload_hash`),
to our account (`api_key`) and to a short time window (`iat`), since the token carries no `exp`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from messenger.config import DEFAULT_VONAGE_MAX_CLOCK_SKEW_S, DEFAULT_VONAGE_MAX_TOKEN_AGE_S
from messenger.errors import SignatureInvalidError, UnsignedCallbackError


def payload_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sign_callback(
    signature_secret: str, body: bytes, api_key: str, *, issued_at: int | None = None, **extra: Any
) -> str:
    """The `Authorization` header value Vonage sends for `body` (tests, sample events, the sandbox)."""
    import jwt  # lazily: PyJWT pulls in `cryptography` (~0.1 s of import), needed only for Vonage

    claims = {
        "iat": int(time.time()) if issued_at is None else issued_at,
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": payload_hash(body),
        "api_key": api_key,
        **extra,
    }
    return "Bearer " + jwt.encode(claims, signature_secret, algorithm="HS256")


def verify_callback(
    signature_secret: str,
    api_key: str,
    body: bytes,
    authorization: str | None,
    *,
    max_age_seconds: int = DEFAULT_VONAGE_MAX_TOKEN_AGE_S,
    max_skew_seconds: int = DEFAULT_VONAGE_MAX_CLOCK_SKEW_S,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Return the verified claims, or raise UnsignedCallbackError (no header) / SignatureInvalidError."""
    if authorization is None or not authorization.strip():
        raise UnsignedCallbackError("Authorization header missing")
    if not signature_secret:
        raise SignatureInvalidError("no signature secret configured")
    import jwt  # lazily, see sign_callback

    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureInvalidError("Authorization is not a Bearer token")
    try:
        claims = jwt.decode(
            token.strip(),
            signature_secret,
            algorithms=["HS256"],
            options={"require": ["iat"], "verify_iat": False, "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise SignatureInvalidError(f"JWT rejected ({type(exc).__name__})") from None
    _check_age(claims.get("iat"), clock(), max_age_seconds, max_skew_seconds)
    claimed_hash = claims.get("payload_hash")
    if not isinstance(claimed_hash, str) or not hmac.compare_digest(
        claimed_hash.lower().encode(), payload_hash(body).encode()
    ):
        raise SignatureInvalidError("payload_hash does not match the body")
    claimed_key = claims.get("api_key")
    if claimed_key is not None and (
        not isinstance(claimed_key, str) or not hmac.compare_digest(claimed_key.encode(), api_key.encode())
    ):
        raise SignatureInvalidError("api_key is not this account's")
    return claims


def _check_age(iat: Any, now: float, max_age: int, max_skew: int) -> None:
    # NaN compares false both ways, so it would pass both window checks: require a finite number.
    if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
        raise SignatureInvalidError("iat is not a number")
    if iat > now + max_skew:
        raise SignatureInvalidError("iat is in the future")
    if now - iat > max_age:
        raise SignatureInvalidError("token is too old")
