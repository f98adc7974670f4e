"""The AWS emulator `make deploy-local` deploys into: ministack, pinned, with the shims below.

    <ministack venv>/bin/python -m deploy_local.emulator     (GATEWAY_PORT, BIND_HOST=127.0.0.1, AUTH=true)

The one place where the emulator is adapted to AWS. template.yaml is deployed as it is; where ministack
1.5.33 does less than AWS, a shim below makes it do what AWS does, named after the AWS behaviour it stands
for. Each is tested in tests/emulator/ (run by `make deploy-local` with this venv's Python). A new ministack
version must be checked against every shim before MINISTACK_VERSION moves (they patch its internals).

Runs in ministack's own virtualenv (it pins botocore), so this module imports nothing from the project.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
import sys
from collections.abc import Callable
from typing import Any

MINISTACK_VERSION = "1.5.33"

# https://<api-id>.execute-api.<region>.amazonaws.com[/path], as the template's outputs build it.
EXECUTE_API_URL = re.compile(rb"https://([a-z0-9]{8,10})\.execute-api\.[a-z0-9-]+\.amazonaws\.com")


# -- 1. CloudWatch alarms on metric math -----------------------------------------------------------------
# AWS: an AWS::CloudWatch::Alarm with `Metrics` (metric math) is created like PutMetricAlarm with Metrics;
# DescribeAlarms lists it with its Metrics. ministack refuses the property and the stack rolls back.


def metric_math_alarm_record(
    record_without_metrics: Callable[..., dict[str, Any]], name: str, props: dict[str, Any]
) -> dict[str, Any]:
    """The alarm as AWS stores it: the template's Metrics instead of one MetricName/Namespace/Statistic."""
    if not props.get("Metrics"):
        return record_without_metrics(name, props)
    single = {k: v for k, v in props.items() if k != "Metrics"}
    single.update(MetricName="-", Namespace="-")  # only to pass the single-metric checks; removed below
    alarm = record_without_metrics(name, single)
    for key in ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Period", "Dimensions", "Unit"):
        alarm.pop(key, None)
    alarm["Metrics"] = copy.deepcopy(props["Metrics"])
    return alarm


# -- 2. HTTP API routes from the OpenAPI Body ------------------------------------------------------------
# AWS: AWS::ApiGatewayV2::Api with `Body` (the OpenAPI document SAM generates for AWS::Serverless::HttpApi)
# imports it: one route per path and method, each with its x-amazon-apigateway-integration. ministack ignores
# Body, so the API has no routes and every request is a 404.

ANY_METHOD = "x-amazon-apigateway-any-method"


def openapi_routes(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(route key, integration as CreateIntegration takes it) for every path and method of an OpenAPI body."""
    routes = []
    for path, methods in (body.get("paths") or {}).items():
        for method, operation in (methods or {}).items():
            integration = (operation or {}).get("x-amazon-apigateway-integration")
            if not isinstance(integration, dict):
                continue
            verb = "ANY" if method == ANY_METHOD else method.upper()
            routes.append(
                (
                    f"{verb} {path}",
                    {
                        "integrationType": str(integration.get("type", "aws_proxy")).upper(),
                        "integrationUri": integration.get("uri", ""),
                        "integrationMethod": integration.get("httpMethod", "POST"),
                        "payloadFormatVersion": integration.get("payloadFormatVersion", "2.0"),
                    },
                )
            )
    return routes


def import_openapi(apigw: Any, api_id: str, body: Any) -> None:
    """Replace the API's routes and integrations with those of `body` (CreateApi / ReimportApi with a Body)."""
    if not isinstance(body, dict):
        return
    apigw._routes[api_id] = {}
    apigw._integrations[api_id] = {}
    for route_key, integration in openapi_routes(body):
        status, _headers, created = apigw._create_integration(api_id, integration)
        if status >= 400:
            raise ValueError(f"importing the OpenAPI body: integration for {route_key}: {created!r}")
        integration_id = _json(created)["integrationId"]
        status, _headers, route = apigw._create_route(
            api_id, {"routeKey": route_key, "target": f"integrations/{integration_id}"}
        )
        if status >= 400:
            raise ValueError(f"importing the OpenAPI body: route {route_key}: {route!r}")


def _json(body: Any) -> dict[str, Any]:
    return json.loads(body) if isinstance(body, (bytes, str)) else dict(body)


# -- 3. A secret's Ref is its ARN ------------------------------------------------------------------------
# AWS: `Ref` of an AWS::SecretsManager::Secret returns the secret's ARN (so `Resource: !Ref Secret` in an IAM
# policy matches it). ministack returns the name, which no policy Resource matches under AUTH=true.

SECRET_TYPE = "AWS::SecretsManager::Secret"


def secret_ref_is_arn(resolve: Callable[..., Any], value: Any, resources: dict[str, Any], *args: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("Ref"), str):
        resource = resources.get(value["Ref"]) if isinstance(resources, dict) else None
        if isinstance(resource, dict) and resource.get("ResourceType") == SECRET_TYPE:
            arn = (resource.get("Attributes") or {}).get("Arn")
            if arn:
                return arn
    return resolve(value, resources, *args)


# -- 4. execute-api URLs lead to the API ----------------------------------------------------------------
# AWS: https://<api-id>.execute-api.<region>.amazonaws.com resolves (DNS) to the API. Here nothing may leave
# the machine, so the stack's outputs name the emulator's own address of that API (its documented path form
# /_aws/execute-api/<api-id>/$default/...), which the stage $default serves as AWS serves the host.


def loopback_execute_api_urls(body: bytes, endpoint: str) -> bytes:
    base = endpoint.rstrip("/").encode()
    return EXECUTE_API_URL.sub(lambda m: base + b"/_aws/execute-api/" + m.group(1) + b"/$default", body)


# -- 5. Records a stream batch reported as failed reach the on-failure destination ----------------------
# AWS: with ReportBatchItemFailures, the mapping retries from the lowest reported sequence number (bisecting,
# up to MaximumRetryAttempts), then sends the invocation record (DDBStreamBatchInfo) to the OnFailure
# destination. ministack stores those settings but carries none out: it drops the reported records silently.
# Here they are sent to the destination at once (retries exhausted at once), so the deployed failure queue
# and `tools.redrive` see what AWS would give them after the retries. Retry and bisect semantics stay the
# local poller's (local/poller.py, `make test`) and AWS's.


def reported_failures(event: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    """The records from the lowest reported `itemIdentifier` on, as Lambda retries them; [] if none."""
    body = result.get("body")
    if isinstance(body, (bytes, str)):
        try:
            body = _json(body)
        except ValueError:
            return []
    if result.get("error") or not isinstance(body, dict):
        return []
    failed = {str(f.get("itemIdentifier")) for f in body.get("batchItemFailures") or [] if isinstance(f, dict)}
    records = event.get("Records") or []
    for index, record in enumerate(records):
        if str((record.get("dynamodb") or {}).get("SequenceNumber")) in failed:
            return records[index:]
    return []


def stream_failures_to_destination(execute: Callable[..., Any], lambda_svc: Any) -> Callable[..., Any]:
    """ministack's `_execute_function`, followed by shim 5 for a stream batch that reported failures."""

    def execute_function(func: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        result = execute(func, event)
        failed = reported_failures(event, result) if _is_stream_event(event) else []
        if failed:
            _send_to_on_failure(lambda_svc, func, failed, result)
        return result

    return execute_function


def _is_stream_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and all(isinstance(r, dict) and r.get("eventSource") == "aws:dynamodb" for r in records)


def _send_to_on_failure(lambda_svc: Any, func: dict[str, Any], failed: list[dict[str, Any]], result: Any) -> None:
    stream_arn = failed[0].get("eventSourceARN", "")
    name = (func.get("config") or func).get("FunctionName")
    for _account, _region, esm in lambda_svc._iter_all_esms():
        if esm.get("EventSourceArn") == stream_arn and str(esm.get("FunctionName", "")).split(":")[-1] == name:
            lambda_svc._send_ddb_stream_failure_record(
                esm, func, failed, stream_arn, {**result, "function_error": None}, "RetryAttemptsExhausted"
            )


# ministack's own functions, as they were before apply() replaced them (the tests call them)
ORIGINALS: dict[str, Callable[..., Any]] = {}


def apply(endpoint: str) -> None:
    """Patch the ministack loaded in this process with shims 1-5 (once)."""
    if ORIGINALS:
        return
    version = importlib.metadata.version("ministack")
    if version != MINISTACK_VERSION:
        raise SystemExit(f"deploy_local.emulator is written for ministack {MINISTACK_VERSION}, found {version}")
    import ministack.app  # noqa: F401 - loads every service module first
    from ministack.services import apigateway, lambda_svc
    from ministack.services.cloudformation import changesets, engine, handlers, provisioners, stacks

    # 1
    record = ORIGINALS["alarm record"] = provisioners._cw_metric_alarm_record
    provisioners._cw_metric_alarm_record = lambda name, props: metric_math_alarm_record(record, name, props)

    # 2
    api = provisioners._RESOURCE_HANDLERS["AWS::ApiGatewayV2::Api"]
    create = ORIGINALS["api create"] = api["create"]
    update = ORIGINALS["api update"] = api["update"]

    def create_api(logical_id: str, props: dict[str, Any], stack_name: str) -> Any:
        api_id, attributes = create(logical_id, props, stack_name)
        import_openapi(apigateway, api_id, props.get("Body"))
        return api_id, attributes

    def update_api(physical_id: str, old: dict[str, Any], new: dict[str, Any], stack_name: str, logical_id=None):
        api_id, attributes = update(physical_id, old, new, stack_name, logical_id)
        if new.get("Body") != old.get("Body") or api_id != physical_id:
            import_openapi(apigateway, api_id, new.get("Body"))
        return api_id, attributes

    api["create"], api["update"] = create_api, update_api

    # 3
    resolve = ORIGINALS["resolve refs"] = engine._resolve_refs

    def resolve_refs(value: Any, resources: Any, *args: Any) -> Any:
        return secret_ref_is_arn(resolve, value, resources, *args)

    for module in (engine, stacks, changesets, handlers):
        module._resolve_refs = resolve_refs

    # 4
    describe = ORIGINALS["describe stacks"] = handlers._ACTION_HANDLERS["DescribeStacks"]

    def describe_stacks(params: Any) -> Any:
        status, headers, body = describe(params)
        return status, headers, loopback_execute_api_urls(body.encode() if isinstance(body, str) else body, endpoint)

    handlers._ACTION_HANDLERS["DescribeStacks"] = describe_stacks

    # 5
    execute = ORIGINALS["execute function"] = lambda_svc._execute_function
    lambda_svc._execute_function = stream_failures_to_destination(execute, lambda_svc)


def main() -> None:
    import os

    apply(f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '4566')}")
    from ministack.app import main as serve

    sys.argv = [sys.argv[0]]
    serve()


if __name__ == "__main__":
    main()
