"""What each webhook route does, free of HTTP framework code: verify, parse, store."""

from __future__ import annotations

from functools import cache

from messenger import deletion
from messenger.config import Settings
from messenger.errors import BadRequestError, NotFoundError
from messenger.ingest import IngestResult, ingest
from messenger.providers.meta import events as meta_events
from messenger.providers.meta import signature as meta_signature
from messenger.providers.meta.signed_request import parse_signed_request
from messenger.providers.vonage import events as vonage_events
from messenger.providers.vonage import signature as vonage_signature
from messenger.secrets import get_meta_secret, get_vonage_secret
from messenger.storage import DynamoStore


@cache
def event_store(table_name: str, retention_days: int) -> DynamoStore:
    """One store (and one pooled DynamoDB client) per warm container."""
    return DynamoStore(table_name, retention_days=retention_days)


def store_for(settings: Settings) -> DynamoStore:
    return event_store(settings.events_table, settings.retention_days)


def meta_verify(settings: Settings, mode: str | None, token: str | None, challenge: str | None) -> str:
    secret = get_meta_secret(settings.require_meta_secret_id(), settings.secret_max_age_seconds)
    return meta_signature.verify_handshake(secret.verify_token, mode, token, challenge)


def meta_receive(settings: Settings, body: bytes, signature_header: str | None) -> IngestResult:
    secret = get_meta_secret(settings.require_meta_secret_id(), settings.secret_max_age_seconds)
    meta_signature.verify_signature(secret.app_secret, body, signature_header)
    return ingest(store_for(settings), meta_events.parse_body(body), settings.handover_pause_seconds)


def _verify_vonage(settings: Settings, body: bytes, authorization: str | None) -> None:
    secret = get_vonage_secret(settings.require_vonage_secret_id(), settings.secret_max_age_seconds)
    vonage_signature.verify_callback(
        secret.signature_secret,
        secret.api_key,
        body,
        authorization,
        max_age_seconds=settings.vonage_max_token_age_seconds,
        max_skew_seconds=settings.vonage_max_clock_skew_seconds,
    )


def vonage_inbound(settings: Settings, body: bytes, authorization: str | None) -> IngestResult:
    _verify_vonage(settings, body, authorization)
    return ingest(store_for(settings), [vonage_events.parse_inbound(body)])


def vonage_status(settings: Settings, body: bytes, authorization: str | None) -> IngestResult:
    _verify_vonage(settings, body, authorization)
    return ingest(store_for(settings), [vonage_events.parse_status(body)])


def meta_data_deletion(settings: Settings, form: dict[str, list[str]], status_url_base: str) -> dict[str, str]:
    """Verify Meta's signed_request, delete that user's data, answer {url, confirmation_code}."""
    secret = get_meta_secret(settings.require_meta_secret_id(), settings.secret_max_age_seconds)
    values = form.get("signed_request") or []
    if len(values) > 1:
        raise BadRequestError("more than one signed_request")
    payload = parse_signed_request(secret.app_secret, values[0] if values else None)
    code = deletion.new_confirmation_code()
    deletion.delete_user_data(store_for(settings), payload["user_id"], sorted(secret.page_tokens), code)
    return {"url": f"{status_url_base}/{code}", "confirmation_code": code}


def meta_data_deletion_status(settings: Settings, code: str) -> dict:
    if not code.isalnum() or len(code) > 64:
        raise NotFoundError("unknown confirmation code")
    status = deletion.deletion_status(store_for(settings), code)
    if status is None:
        raise NotFoundError("unknown confirmation code")
    return status
