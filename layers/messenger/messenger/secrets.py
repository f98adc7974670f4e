"""Provider secrets from Secrets Manager, cached by Powertools; values never reach a log or an error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities import parameters

from messenger.errors import SecretUnavailableError


@dataclass(frozen=True, slots=True)
class MetaSecret:
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    page_tokens: dict[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class VonageSecret:
    application_id: str
    private_key: str = field(repr=False)
    signature_secret: str = field(repr=False)
    api_key: str = field(repr=False)


def _fetch(secret_id: str, max_age: int) -> dict[str, Any]:
    try:
        value = parameters.get_secret(secret_id, transform="json", max_age=max_age)
    except Exception as exc:  # noqa: BLE001 - any SDK or transform failure means "unavailable"
        # The exception type says what went wrong; its text may quote the value, so it is not kept.
        raise SecretUnavailableError(f"secret {secret_id!r} could not be read ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise SecretUnavailableError(f"secret {secret_id!r} is not a JSON object")
    return value


def _require_str(value: dict[str, Any], key: str, secret_id: str) -> str:
    item = value.get(key)
    if not isinstance(item, str) or not item:
        raise SecretUnavailableError(f"secret {secret_id!r} lacks a non-empty string {key!r}")
    return item


def get_meta_secret(secret_id: str, max_age: int = 300) -> MetaSecret:
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


def get_vonage_secret(secret_id: str, max_age: int = 300) -> VonageSecret:
    value = _fetch(secret_id, max_age)
    return VonageSecret(
        application_id=_require_str(value, "application_id", secret_id),
        private_key=_require_str(value, "private_key", secret_id),
        signature_secret=_require_str(value, "signature_secret", secret_id),
        api_key=_require_str(value, "api_key", secret_id),
    )
