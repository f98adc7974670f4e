"""The RS256 application JWT for the Messages API, signed once and reused until shortly before expiry.

PyJWT and `cryptography` are imported by the first signer, not with this module: the reply function's cold
start does not pay for them until it first answers through Vonage.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from messenger.errors import SecretUnavailableError

DEFAULT_TTL_S = 900
DEFAULT_REFRESH_BEFORE_S = 60


class AppJwt:
    """Thread-safe cache of one application's token. `signatures` counts how often we really signed."""

    def __init__(
        self,
        application_id: str,
        private_key_pem: str,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        refresh_before_s: int = DEFAULT_REFRESH_BEFORE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if refresh_before_s >= ttl_s:
            raise ValueError("refresh_before_s must be shorter than ttl_s")
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            self._key: Any = load_pem_private_key(private_key_pem.encode(), password=None)
        except (ValueError, TypeError):
            # The key's text never goes into the error.
            raise SecretUnavailableError("the Vonage secret's private_key is not a PEM private key") from None
        self.application_id = application_id
        self.ttl_s = ttl_s
        self.refresh_before_s = refresh_before_s
        self.clock = clock
        self.signatures = 0
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def token(self) -> str:
        now = self.clock()
        token = self._token
        if token is not None and now < self._refresh_at:
            return token
        with self._lock:
            if self._token is None or self.clock() >= self._refresh_at:
                import jwt

                iat = int(self.clock())
                claims = {
                    "application_id": self.application_id,
                    "iat": iat,
                    "exp": iat + self.ttl_s,
                    "jti": str(uuid.uuid4()),
                }
                self._token = jwt.encode(claims, self._key, algorithm="RS256", headers={"typ": "JWT"})
                self._refresh_at = iat + self.ttl_s - self.refresh_before_s
                self.signatures += 1
            return self._token


class AppJwtCache:
    """One AppJwt per (application id, key) so a rotated secret gets a new signer without a deploy."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._signers: dict[tuple[str, str], AppJwt] = {}

    def signer(self, application_id: str, private_key_pem: str) -> AppJwt:
        key = (application_id, hashlib.sha256(private_key_pem.encode()).hexdigest())
        signer = self._signers.get(key)
        if signer is None:
            with self._lock:
                signer = self._signers.get(key)
                if signer is None:
                    signer = AppJwt(application_id, private_key_pem, **self.options)
                    self._signers = {key: signer}  # keep only the current key
        return signer

    @property
    def signatures(self) -> int:
        return sum(s.signatures for s in self._signers.values())
