"""The emulator shims (deploy_local/emulator.py), each against the ministack version it is written for.

They need ministack, which lives in its own virtualenv (it pins botocore): `make deploy-local` runs them first,
with that virtualenv's Python and `--noconftest` (the project's conftest needs the project's packages). Under
`make test` they are skipped.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("ministack", reason="ministack runs in its own virtualenv: make deploy-local runs these tests")

from deploy_local import emulator  # noqa: E402

ENDPOINT = "http://127.0.0.1:4599"


@pytest.fixture(scope="module")
def ministack() -> Any:
    emulator.apply(ENDPOINT)
    from ministack.services import apigateway, cloudwatch, lambda_svc, sqs
    from ministack.services.cloudformation import engine, handlers, provisioners, stacks

    class Modules:
        pass

    modules = Modules()
    for name, module in {
        "apigateway": apigateway,
        "cloudwatch": cloudwatch,
        "lambda_svc": lambda_svc,
        "sqs": sqs,
        "engine": engine,
        "handlers": handlers,
        "provisioners": provisioners,
        "stacks": stacks,
    }.items():
        setattr(modules, name, module)
    return modules


METRIC_MATH_ALARM = {
    "AlarmDescription": "permanent reply failures",
    "Metrics": [
        {"Id": "failed", "ReturnData": False, "MetricStat": {"Metric": {"Namespace": "N", "MetricName": "F"}}},
        {"Id": "rate", "Expression": "100 * failed", "ReturnData": True},
    ],
    "EvaluationPeriods": 1,
    "Threshold": 5,
    "ComparisonOperator": "GreaterThanThreshold",
    "AlarmActions": ["arn:aws:sns:us-east-1:000000000000:topic"],
}


def test_a_metric_math_alarm_is_created_with_its_metrics(ministack: Any) -> None:
    # Given ministack's own record builder, which refuses Metrics (what the shim is for)
    with pytest.raises(ValueError, match="metric math"):
        emulator.ORIGINALS["alarm record"]("x", METRIC_MATH_ALARM)
    # When CloudFormation creates the alarm through the shimmed provisioner
    handler = ministack.provisioners._RESOURCE_HANDLERS["AWS::CloudWatch::Alarm"]["create"]
    name, attributes = handler("RateAlarm", dict(METRIC_MATH_ALARM, AlarmName="rate-alarm"), "stack")
    # Then it is stored as AWS stores it: its Metrics, no single metric, its actions
    alarm = ministack.cloudwatch._alarms[name]
    assert [m["Id"] for m in alarm["Metrics"]] == ["failed", "rate"]
    assert "MetricName" not in alarm and "Namespace" not in alarm
    assert alarm["AlarmActions"] == METRIC_MATH_ALARM["AlarmActions"]
    assert attributes["Arn"].endswith(":alarm:rate-alarm")


def test_a_single_metric_alarm_is_left_to_ministack(ministack: Any) -> None:
    handler = ministack.provisioners._RESOURCE_HANDLERS["AWS::CloudWatch::Alarm"]["create"]
    props = {k: v for k, v in METRIC_MATH_ALARM.items() if k != "Metrics"}
    name, _ = handler("ErrorsAlarm", {**props, "Namespace": "AWS/Lambda", "MetricName": "Errors", "Period": 60}, "s")
    alarm = ministack.cloudwatch._alarms[name]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Period"]) == ("AWS/Lambda", "Errors", 60)


# The shape SAM generates for an HttpApi event (x-amazon-apigateway-integration, Lambda proxy, payload 2.0)
_integration = {
    "type": "aws_proxy",
    "httpMethod": "POST",
    "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
    "arn:aws:lambda:us-east-1:000000000000:function:hook/invocations",
    "payloadFormatVersion": "2.0",
}
OPENAPI_BODY = {
    "openapi": "3.0.1",
    "paths": {
        "/meta/webhook": {
            "get": {"x-amazon-apigateway-integration": _integration},
            "post": {"x-amazon-apigateway-integration": _integration},
        },
        "/meta/data-deletion/{code}": {"get": {"x-amazon-apigateway-integration": _integration}},
        "/docs": {"get": {"responses": {}}},  # no integration: no route
    },
}


def test_an_http_api_gets_the_routes_of_its_openapi_body(ministack: Any) -> None:
    # When CloudFormation creates an AWS::ApiGatewayV2::Api with a Body (what SAM generates for HttpApi)
    handler = ministack.provisioners._RESOURCE_HANDLERS["AWS::ApiGatewayV2::Api"]["create"]
    api_id, _ = handler("HttpApi", {"Body": OPENAPI_BODY}, "stack")
    # Then each path and method is a route whose integration is the Lambda proxy of the body
    routes = ministack.apigateway._routes[api_id].values()
    assert sorted(r["routeKey"] for r in routes) == [
        "GET /meta/data-deletion/{code}",
        "GET /meta/webhook",
        "POST /meta/webhook",
    ]
    integrations = ministack.apigateway._integrations[api_id]
    for route in routes:
        integration = integrations[route["target"].split("/", 1)[1]]
        assert (integration["integrationType"], integration["payloadFormatVersion"]) == ("AWS_PROXY", "2.0")
        assert integration["integrationUri"] == _integration["uri"]


def test_an_updated_body_replaces_the_routes(ministack: Any) -> None:
    handlers = ministack.provisioners._RESOURCE_HANDLERS["AWS::ApiGatewayV2::Api"]
    api_id, _ = handlers["create"]("HttpApi", {"Body": OPENAPI_BODY}, "stack")
    smaller = {"paths": {"/vonage/inbound": {"post": {"x-amazon-apigateway-integration": _integration}}}}
    handlers["update"](api_id, {"Body": OPENAPI_BODY}, {"Body": smaller}, "stack", "HttpApi")
    assert [r["routeKey"] for r in ministack.apigateway._routes[api_id].values()] == ["POST /vonage/inbound"]


def test_the_ref_of_a_secret_is_its_arn(ministack: Any) -> None:
    # Given a stack's resources as ministack records them (a secret's physical id is its name)
    arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:stack/meta-AbCdEf"
    resources = {
        "MetaSecret": {
            "ResourceType": "AWS::SecretsManager::Secret",
            "PhysicalResourceId": "stack/meta",
            "Attributes": {"Arn": arn},
        },
        "Queue": {"ResourceType": "AWS::SQS::Queue", "PhysicalResourceId": "http://q", "Attributes": {"Arn": "arn:q"}},
    }
    statement = {"Resource": [{"Ref": "MetaSecret"}, {"Ref": "Queue"}]}
    original = emulator.ORIGINALS["resolve refs"]({"Ref": "MetaSecret"}, resources, {}, {}, {}, "stack", "id")
    assert original == "stack/meta"  # what the shim is for
    # Then a Ref nested anywhere (here in a policy statement) resolves a secret to its ARN, and nothing else changes
    for module in (ministack.engine, ministack.stacks):
        resolved = module._resolve_refs(statement, resources, {}, {}, {}, "stack", "id")
        assert resolved == {"Resource": [arn, "http://q"]}


def test_execute_api_urls_in_describe_stacks_lead_to_the_emulator() -> None:
    body = (
        b"<OutputValue>https://a1b2c3d4.execute-api.us-east-1.amazonaws.com/meta/webhook</OutputValue>"
        b"<OutputValue>https://a1b2c3d4.execute-api.eu-west-1.amazonaws.com</OutputValue>"
        b"<OutputValue>https://console.aws.amazon.com/cloudwatch/home</OutputValue>"
    )
    assert emulator.loopback_execute_api_urls(body, ENDPOINT + "/") == (
        b"<OutputValue>http://127.0.0.1:4599/_aws/execute-api/a1b2c3d4/$default/meta/webhook</OutputValue>"
        b"<OutputValue>http://127.0.0.1:4599/_aws/execute-api/a1b2c3d4/$default</OutputValue>"
        b"<OutputValue>https://console.aws.amazon.com/cloudwatch/home</OutputValue>"
    )


def stream_event(*sequences: int) -> dict[str, Any]:
    return {
        "Records": [
            {"eventSource": "aws:dynamodb", "eventSourceARN": "arn:s", "dynamodb": {"SequenceNumber": f"{s:021d}"}}
            for s in sequences
        ]
    }


def test_records_from_the_lowest_reported_failure_on_are_the_failed_ones() -> None:
    event = stream_event(1, 2, 3, 4)
    body = {"batchItemFailures": [{"itemIdentifier": f"{4:021d}"}, {"itemIdentifier": f"{2:021d}"}]}
    failed = emulator.reported_failures(event, {"body": json.dumps(body)})
    assert [r["dynamodb"]["SequenceNumber"] for r in failed] == [f"{s:021d}" for s in (2, 3, 4)]
    assert emulator.reported_failures(event, {"body": {"batchItemFailures": []}}) == []
    assert emulator.reported_failures(event, {"body": None}) == []
    # A function error is not a partial failure: ministack retries the batch itself
    assert emulator.reported_failures(event, {"error": True, "body": body}) == []


def test_reported_failures_reach_the_mapping_on_failure_queue(ministack: Any) -> None:
    # Given a queue and a stream mapping of the function `reply` whose OnFailure destination is that queue
    lambda_svc, sqs = ministack.lambda_svc, ministack.sqs
    queue = sqs._queues[sqs._act_create_queue({"QueueName": "failures"}, "")["QueueUrl"]]
    function_arn = "arn:aws:lambda:us-east-1:000000000000:function:reply"
    lambda_svc._esms["esm-1"] = {
        "UUID": "esm-1",
        "FunctionName": function_arn,
        "EventSourceArn": "arn:s",
        "DestinationConfig": {"OnFailure": {"Destination": queue["attributes"]["QueueArn"]}},
    }
    answer = {"body": {"batchItemFailures": [{"itemIdentifier": f"{8:021d}"}]}}
    execute = emulator.stream_failures_to_destination(lambda _func, _event: answer, lambda_svc)
    try:
        # When the mapping's invocation of a batch of records 7 and 8 answers that record 8 failed
        assert execute({"config": {"FunctionName": "reply", "FunctionArn": function_arn}}, stream_event(7, 8)) == answer
    finally:
        del lambda_svc._esms["esm-1"]
    # Then the queue holds Lambda's on-failure invocation record for record 8, as tools.redrive reads it
    message = json.loads(queue["messages"][-1]["body"])
    info = message["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (f"{8:021d}", f"{8:021d}", 1)
    assert (info["streamArn"], info["shardId"]) == ("arn:s", "shardId-00000000000000000000-00000000")
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_the_running_ministack_calls_the_shims(ministack: Any) -> None:
    assert ministack.handlers._ACTION_HANDLERS["DescribeStacks"].__module__ == emulator.__name__
    assert ministack.lambda_svc._execute_function.__module__ == emulator.__name__
    assert ministack.provisioners._cw_metric_alarm_record.__module__ == emulator.__name__
