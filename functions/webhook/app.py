"""Webhook Lambda: HTTP routing only. Verification, parsing and storage live in the messenger layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from messenger.config import get_settings
from messenger.errors import MessengerError, UnsignedCallbackError
from messenger.inbound import routes
from messenger.inbound.request import Post, raw_body, status_for
from messenger.observability import logger, metrics, tracer

app = APIGatewayHttpResolver()


@app.get("/meta/webhook")
def meta_verify() -> Response[Any]:
    query = app.current_event.query_string_parameters or {}
    challenge = routes.meta_verify(
        get_settings(), query.get("hub.mode"), query.get("hub.verify_token"), query.get("hub.challenge")
    )
    return Response(200, content_types.TEXT_PLAIN, challenge)


@app.get("/meta/data-deletion/<code>")
def meta_data_deletion_status(code: str) -> Response[Any]:
    return Response(200, content_types.APPLICATION_JSON, routes.meta_data_deletion_status(get_settings(), code))


def _post(action: routes.PostAction) -> Callable[[], Response[Any]]:
    """A POST route's handler: the exact bytes the provider signed (size-checked, base64-decoded if need be),
    then the route's action; its answer is the 200's JSON body."""

    def handle() -> Response[Any]:
        settings, event = get_settings(), app.current_event
        post = Post(raw_body(event.raw_event, settings.max_body_bytes), event.headers, event.raw_event)
        return Response(200, content_types.APPLICATION_JSON, action(settings, post))

    return handle


for path, action in routes.POST_ROUTES.items():  # the one table of the POST routes
    app.post(path)(_post(action))


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


@app.not_found
def handle_not_found(error: Exception) -> Response[Any]:
    """A path or method the template does not route (API Gateway answers those itself; `sam local`, the local
    stack and a direct invoke reach here): 404, not the catch-all's 500."""
    metrics.add_metric(name="Rejected404", unit=MetricUnit.Count, value=1)
    logger.warning("no such route", extra={"status": 404, "path": app.current_event.path})
    return Response(404, content_types.APPLICATION_JSON, {"error": "not_found"})


@app.exception_handler(Exception)
def handle_unexpected(error: Exception) -> Response[Any]:
    logger.exception("unexpected failure", extra={"path": app.current_event.path})
    return Response(500, content_types.APPLICATION_JSON, {"error": "internal_error"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics  # no ColdStart metric: each log line's cold_start says it, for free
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
