"""The local stack reads routes, environment and stream settings from template.yaml (local/template.py)."""

from __future__ import annotations

from local.api_server import Router, to_http
from local.stack.lifecycle import LocalStack
from local.stack.settings import SECRET_NAMES, TABLE_NAME, Ports
from local.template import (
    function_environment,
    function_spec,
    http_routes,
    key_schema,
    stream_function_id,
    stream_settings,
)


def test_http_routes_come_from_the_webhook_functions_httpapi_events() -> None:
    routes = {(r.method, r.path): r for r in http_routes()}
    assert {
        ("GET", "/meta/webhook"),
        ("POST", "/meta/webhook"),
        ("POST", "/vonage/inbound"),
        ("POST", "/vonage/status"),
        ("POST", "/meta/data-deletion"),
        ("GET", "/meta/data-deletion/{code}"),
    } <= set(routes)
    assert {r.function_id for r in routes.values()} == {"WebhookFunction"}
    assert routes[("POST", "/meta/webhook")].code_uri.rstrip("/") == "functions/webhook"


def test_router_matches_path_parameters_and_methods() -> None:
    router = Router(http_routes())
    found = router.match("GET", "/meta/data-deletion/ABC123")
    assert found is not None
    route, params = found
    assert route.path == "/meta/data-deletion/{code}" and params == {"code": "ABC123"}
    assert router.match("GET", "/meta/data-deletion/a/b") is None
    assert router.match("DELETE", "/meta/webhook") is None
    assert router.match("GET", "/nope") is None


def test_stream_settings_are_the_templates() -> None:
    assert stream_function_id() == "ReplyFunction"
    settings = stream_settings()
    assert settings.batch_size == 25
    assert settings.batching_window_s == 1
    assert settings.maximum_retry_attempts == 5
    assert settings.maximum_record_age_s == 3600
    assert settings.bisect_on_error is True
    assert settings.report_batch_item_failures is True
    assert settings.starting_position == "TRIM_HORIZON"
    assert settings.on_failure_queue == "ReplyFailureQueue"
    assert settings.filter_patterns == [
        {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"record_type": {"S": ["inbound"]}}}}
    ]


def test_function_specs_merge_globals() -> None:
    reply = function_spec("ReplyFunction")
    assert (reply.code_uri, reply.module_file, reply.function_name) == ("functions/reply", "app.py", "lambda_handler")
    assert reply.timeout_s == 60
    assert function_spec("WebhookFunction").timeout_s == 10


def test_environment_resolves_to_the_local_stack() -> None:
    # Given a stack on chosen ports (nothing is started)
    stack = LocalStack(Ports(api=3900, dynamodb=8900, moto=5900, sandbox=3901), log=lambda _: None)
    stack.queue_url = "http://127.0.0.1:5900/000000000000/ReplyFailureQueue"
    # When its environment is built
    env = stack.environment()
    # Then the template's names point at the local services and the sandbox
    assert env["EVENTS_TABLE"] == TABLE_NAME == "messenger-events"
    assert env["META_SECRET_ID"] == SECRET_NAMES["meta"] == "local/meta"
    assert env["VONAGE_SECRET_ID"] == SECRET_NAMES["vonage"] == "local/vonage"
    assert env["GRAPH_API_BASE"] == env["VONAGE_API_BASE"] == "http://127.0.0.1:3901"
    assert env["GRAPH_API_VERSION"] == "v25.0"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:8900"
    assert env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == env["AWS_ENDPOINT_URL_SQS"] == "http://127.0.0.1:5900"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert env["AWS_ACCESS_KEY_ID"] == "local"
    assert env["RETENTION_DAYS"] == "14"
    assert env["HUMAN_AGENT_TAG_ENABLED"] == "false", "the reply function's own variables are included"


def test_function_environment_drops_what_it_cannot_resolve() -> None:
    env = function_environment("WebhookFunction", {})
    assert "EVENTS_TABLE" not in env
    assert env["POWERTOOLS_SERVICE_NAME"] == "messenger-webhook"


def test_lambda_results_become_http_like_api_gateway() -> None:
    assert to_http({"statusCode": 201, "headers": {"x-a": "1"}, "body": "hi", "cookies": ["c=1"]}) == (
        201,
        {"x-a": "1"},
        ["c=1"],
        b"hi",
    )
    assert to_http({"statusCode": 200, "body": "aGk=", "isBase64Encoded": True})[3] == b"hi"
    assert to_http({"ok": True}) == (200, {"content-type": "application/json"}, [], b'{"ok": true}')


def test_the_poller_lanes_come_from_the_template():
    # The stream's lanes: ParallelizationFactor batches per shard, records keyed by the full item key
    assert stream_settings().parallelization_factor == 10
    assert key_schema() == ("pk", "sk")
