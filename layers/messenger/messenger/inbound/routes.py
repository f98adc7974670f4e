"""What each webhook route does, free of HTTP framework code: verify, parse, store, answer.

`POST_ROUTES` is the one table of the POST routes (path -> action) that functions/webhook/app.py dispatches
through; each action takes the settings and the `Post` and returns the JSON body of its 200. Errors are raised
(`MessengerError`) and mapped to a status once, in inbound/request.py.

The data-deletion routes' modules are imported when first used: a cold start for a message does not load them.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from messenger.config import Settings
from messenger.errors import BadRequestError, NotFoundError
from messenger.events import Event, Kind, Provider
from messenger.inbound.ingest import INGEST_WORKERS, IngestResult, ingest
from messenger.inbound.request import Post, form_fields, public_base_url
from messenger.observability import logger, metrics
from messenger.providers.meta import events as meta_events
from messenger.providers.meta import signature as meta_signature
from messenger.providers.vonage import events as vonage_events
from messenger.providers.vonage import signature as vonage_signature
from messenger.secrets import get_meta_secret, get_vonage_secret
from messenger.storage import DynamoStore, dynamodb_client


@cache
def event_store(table_name: str, retention_days: int) -> DynamoStore:
    """One store (and one pooled DynamoDB client, a connection per ingest thread) per warm container."""
    return DynamoStore(table_name, client=dynamodb_client(INGEST_WORKERS), retention_days=retention_days)


def store_for(settings: Settings) -> DynamoStore:
    return event_store(settings.events_table, settings.retention_days)


def meta_verify(settings: Settings, mode: str | None, token: str | None, challenge: str | None) -> str:
    secret = get_meta_secret(settings.require_meta_secret_id(), settings.secret_max_age_seconds)
    return meta_signature.verify_handshake(secret.verify_token, mode, token, challenge)


def meta_receive(settings: Settings, post: Post) -> dict[str, Any]:
    secret = get_meta_secret(settings.require_meta_secret_id(), settings.secret_max_age_seconds)
    meta_signature.verify_signature(secret.app_secret, post.body, post.headers.get("x-hub-signature-256"))
    # Above Meta's documented batch size the POST is refused whole (413) before anything is stored.
    events = meta_events.parse_body(post.body, max_events=meta_events.MAX_EVENTS_PER_POST)
    note_odd_events(events)
    return accepted(Provider.META, ingest(store_for(settings), events, settings.handover_pause_seconds))


def accepted(provider: Provider, result: IngestResult) -> dict[str, Any]:
    """Count and log what a POST stored; the body of its 200."""
    metrics.add_metric(name="EventsStored", unit=MetricUnit.Count, value=result.stored)
    if result.duplicates:  # a zero is bytes in every request's metric line and a metric billed every hour
        metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=result.duplicates)
    logger.info(
        "events accepted",
        extra={
            "provider": provider.value,
            "stored": result.stored,
            "duplicates": result.duplicates,
            "statuses": result.statuses_applied,
        },
    )
    return {"stored": result.stored, "duplicates": result.duplicates}


def note_odd_events(events: list[Event]) -> None:
    """Count the events we store without understanding them, and say so when Meta restricts the Page."""
    unknown = [e for e in events if e.kind is Kind.UNKNOWN]
    if unknown:
        metrics.add_metric(name="UnknownEvents", unit=MetricUnit.Count, value=len(unknown))
        for event in unknown[:10]:  # the type and reason only, never the content
            logger.warning(
                "event stored as unknown",
                extra={
                    "provider": event.provider.value,
                    "event_id": event.event_id,
                    "event_type": event.message_type,
                    "reason": (event.error or {}).get("reason"),
                },
            )
    for event in events:
        if event.kind is Kind.POLICY_ENFORCEMENT:
            logger.error(
                "operator action: Meta took a policy enforcement action on the Page",
                extra={"page_id": event.page_id, "action": event.message_type},
            )


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


def vonage_inbound(settings: Settings, post: Post) -> dict[str, Any]:
    _verify_vonage(settings, post.body, post.headers.get("authorization"))
    events = [vonage_events.parse_inbound(post.body)]
    note_odd_events(events)
    return accepted(Provider.VONAGE, ingest(store_for(settings), events))


def vonage_status(settings: Settings, post: Post) -> dict[str, Any]:
    _verify_vonage(settings, post.body, post.headers.get("authorization"))
    events = [vonage_events.parse_status(post.body)]
    note_odd_events(events)
    return accepted(Provider.VONAGE, ingest(store_for(settings), events))


def meta_data_deletion(settings: Settings, post: Post) -> dict[str, Any]:
    """Verify Meta's signed_request, delete that user's data, answer {url, confirmation_code}."""
    from messenger.inbound import deletion
    from messenger.providers.meta.signed_request import parse_signed_request

    form = form_fields(post.body)
    secret = get_meta_secret(settings.require_meta_secret_id(), settings.secret_max_age_seconds)
    values = form.get("signed_request") or []
    if len(values) > 1:
        raise BadRequestError("more than one signed_request")
    payload = parse_signed_request(secret.app_secret, values[0] if values else None)
    code = deletion.new_confirmation_code()
    deletion.delete_user_data(store_for(settings), payload["user_id"], sorted(secret.page_tokens), code)
    logger.info("data deletion completed", extra={"confirmation_code": code})
    status_url = f"{public_base_url(post.event)}/meta/data-deletion/{code}"
    return {"url": status_url, "confirmation_code": code}


def meta_data_deletion_status(settings: Settings, code: str) -> dict[str, Any]:
    if not code.isalnum() or len(code) > 64:
        raise NotFoundError("unknown confirmation code")
    from messenger.inbound import deletion

    status = deletion.deletion_status(store_for(settings), code)
    if status is None:
        raise NotFoundError("unknown confirmation code")
    return status


if TYPE_CHECKING:  # a type only: building the alias at import would cost every cold start
    from collections.abc import Callable

    PostAction = Callable[[Settings, Post], dict[str, Any]]

# Every POST route of the HTTP API (template.yaml) and what it does; the handler registers exactly these.
POST_ROUTES: dict[str, PostAction] = {
    "/meta/webhook": meta_receive,
    "/vonage/inbound": vonage_inbound,
    "/vonage/status": vonage_status,
    "/meta/data-deletion": meta_data_deletion,
}
