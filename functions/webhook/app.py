"""Webhook Lambda: HTTP routing only. Verification, parsing and storage live in the messenger layer."""

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.config import Settings, get_settings
from messenger.errors import MessengerError, UnsignedCallbackError
from messenger.inbound import routes
from messenger.inbound.ingest import IngestResult
from messenger.inbound.request import form_fields, public_base_url, raw_body, status_for
from messenger.observability import logger, metrics, tracer

app = APIGatewayHttpResolver()


@app.get("/meta/webhook")
def meta_verify() -> Response[Any]:
    query = app.current_event.query_string_parameters or {}
    challenge = routes.meta_verify(
        get_settings(), query.get("hub.mode"), query.get("hub.verify_token"), query.get("hub.challenge")
    )
    return Response(200, content_types.TEXT_PLAIN, challenge)


@app.post("/meta/webhook")
def meta_receive() -> Response[Any]:
    settings, body = _settings_and_body()
    result = routes.meta_receive(settings, body, app.current_event.headers.get("x-hub-signature-256"))
    return _accepted("meta", result)


@app.post("/vonage/inbound")
def vonage_inbound() -> Response[Any]:
    settings, body = _settings_and_body()
    result = routes.vonage_inbound(settings, body, app.current_event.headers.get("authorization"))
    return _accepted("vonage", result)


@app.post("/vonage/status")
def vonage_status() -> Response[Any]:
    settings, body = _settings_and_body()
    result = routes.vonage_status(settings, body, app.current_event.headers.get("authorization"))
    return _accepted("vonage", result)


@app.post("/meta/data-deletion")
def meta_data_deletion() -> Response[Any]:
    settings, body = _settings_and_body()
    base = public_base_url(app.current_event.raw_event) + "/meta/data-deletion"
    answer = routes.meta_data_deletion(settings, form_fields(body), base)
    logger.info("data deletion completed", extra={"confirmation_code": answer["confirmation_code"]})
    return Response(200, content_types.APPLICATION_JSON, answer)


@app.get("/meta/data-deletion/<code>")
def meta_data_deletion_status(code: str) -> Response[Any]:
    return Response(200, content_types.APPLICATION_JSON, routes.meta_data_deletion_status(get_settings(), code))


def _settings_and_body() -> tuple[Settings, bytes]:
    """The settings and the exact bytes the provider signed (size-checked, base64-decoded if need be)."""
    settings = get_settings()
    return settings, raw_body(app.current_event.raw_event, settings.max_body_bytes)


def _accepted(provider: str, result: IngestResult) -> Response[Any]:
    metrics.add_metric(name="EventsStored", unit=MetricUnit.Count, value=result.stored)
    if result.duplicates:  # a zero is bytes in every request's metric line and a metric billed every hour
        metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=result.duplicates)
    logger.info(
        "events accepted",
        extra={
            "provider": provider,
            "stored": result.stored,
            "duplicates": result.duplicates,
            "statuses": result.statuses_applied,
        },
    )
    return Response(200, content_types.APPLICATION_JSON, {"stored": result.stored, "duplicates": result.duplicates})


@app.exception_handler(MessengerError)
def handle_messenger_error(error: MessengerError) -> Response[Any]:
    status = status_for(error)
    if isinstance(error, UnsignedCallbackError):
        metrics.add_metric(name="UnsignedCallbacks", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=f"Rejected{status}", unit=MetricUnit.Count, value=1)
    log = logger.error if status >= 500 else logger.warning
    log(
        "request rejected",
        extra={"status": status, "error": error.code, "reason": str(error), "path": app.current_event.path},
    )
    return Response(status, content_types.APPLICATION_JSON, {"error": error.code})


@app.exception_handler(Exception)
def handle_unexpected(error: Exception) -> Response[Any]:
    logger.exception("unexpected failure", extra={"path": app.current_event.path})
    return Response(500, content_types.APPLICATION_JSON, {"error": "internal_error"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics  # no ColdStart metric: each log line's cold_start says it, for free
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
