"""Provider secrets from Secrets Manager, cached per container for `max_age` seconds; values never reach a log
or an error.

One GetSecretValue through a client configured like the table's (messenger.aws), and a dict as the cache.
Powertools' `parameters` did the same, but its package imports every provider (SSM, AppConfig, DynamoDB) at
each cold start.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any, NamedTuple

from messenger.aws import aws_client
from messenger.config import DEFAULT_SECRET_MAX_AGE_S
from messenger.errors import SecretUnavailableError

# secret id -> (monotonic time it expires, parsed value)
_cache: dict[str, tuple[float, dict[str, Any]]] = {}


# NamedTuples rather than dataclasses for the cold start (see config.Settings); repr never shows a secret value.
class MetaSecret(NamedTuple):
    app_secret: str
    verify_token: str
    page_tokens: dict[str, str]

    def __repr__(self) -> str:
        return f"MetaSecret(pages={sorted(self.page_tokens)!r})"


class VonageSecret(NamedTuple):
    application_id: str
    private_key: str
    signature_secret: str
    api_key: str

    def __repr__(self) -> str:
        return f"VonageSecret(application_id={self.application_id!r})"


@functools.cache
def _client() -> Any:
    return aws_client("secretsmanager")


def clear_cache() -> None:
    """Forget every cached value: the next read of each secret asks Secrets Manager again."""
    _cache.clear()


def _fetch(secret_id: str, max_age: int) -> dict[str, Any]:
    """The secret's JSON object, from the cache while younger than `max_age` seconds."""
    now = time.monotonic()
    cached = _cache.get(secret_id)
    if cached is not None and now < cached[0]:
        return cached[1]
    try:
        value = json.loads(_client().get_secret_value(SecretId=secret_id)["SecretString"])
    except Exception as exc:  # noqa: BLE001 - any SDK, missing-string or JSON failure means "unavailable"
        # The exception type says what went wrong; its text may quote the value, so it is not kept.
        raise SecretUnavailableError(f"secret {secret_id!r} could not be read ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise SecretUnavailableError(f"secret {secret_id!r} is not a JSON object")
    if max_age > 0:
        _cache[secret_id] = (now + max_age, value)
    return value


def _require_str(value: dict[str, Any], key: str, secret_id: str) -> str:
    item = value.get(key)
    if not isinstance(item, str) or not item:
        raise SecretUnavailableError(f"secret {secret_id!r} lacks a non-empty string {key!r}")
    return item


def get_meta_secret(secret_id: str, max_age: int = DEFAULT_SECRET_MAX_AGE_S) -> MetaSecret:
    value = _fetch(secret_id, max_age)
    page_tokens = value.get("page_tokens", {})
    if not isinstance(page_tokens, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in page_tokens.items()
    ):
        raise SecretUnavailableError(f"secret {secret_id!r}: page_tokens must map page ids to tokens")
    return MetaSecret(
        app_secret=_require_str(value, "app_secret", secret_id),
        verify_token=_require_str(value, "verify_token", secret_id),
        page_tokens=dict(page_tokens),
    )


def get_vonage_secret(secret_id: str, max_age: int = DEFAULT_SECRET_MAX_AGE_S) -> VonageSecret:
    value = _fetch(secret_id, max_age)
    return VonageSecret(
        application_id=_require_str(value, "application_id", secret_id),
        private_key=_require_str(value, "private_key", secret_id),
        signature_secret=_require_str(value, "signature_secret", secret_id),
        api_key=_require_str(value, "api_key", secret_id),
    )
