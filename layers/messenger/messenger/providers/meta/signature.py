"""`X-Hub-Signature-256` verification over the raw body bytes, and the verify handshake."""

from __future__ import annotations

import hashlib
import hmac

from messenger.errors import HandshakeRejectedError, SignatureInvalidError, SignatureMissingError

PREFIX = "sha256="


def sign(app_secret: str, body: bytes) -> str:
    """The header value Meta sends for `body` (used by tests, sample events and the sandbox)."""
    return PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(app_secret: str, body: bytes, header: str | None) -> None:
    """Raise unless `header` is a valid sha256 signature of exactly these bytes.

    Missing header (or only the legacy SHA1 `X-Hub-Signature`) -> SignatureMissingError (401);
    malformed or wrong -> SignatureInvalidError (403). Never skipped, even with an empty secret.
    """
    if not app_secret:
        raise SignatureInvalidError("no app secret configured")
    if not header:
        raise SignatureMissingError("X-Hub-Signature-256 header missing")
    if not header.startswith(PREFIX):
        raise SignatureInvalidError("X-Hub-Signature-256 must start with sha256=")
    expected = sign(app_secret, body)
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise SignatureInvalidError("X-Hub-Signature-256 does not match the body")


def verify_handshake(verify_token: str, mode: str | None, token: str | None, challenge: str | None) -> str:
    """Return the challenge to echo when Meta's subscription handshake is valid, else raise."""
    if mode != "subscribe" or token is None or challenge is None or not verify_token:
        raise HandshakeRejectedError("verify handshake rejected")
    if not hmac.compare_digest(verify_token.encode(), token.encode()):
        raise HandshakeRejectedError("verify handshake rejected")
    return challenge
