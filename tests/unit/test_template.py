"""template.yaml is the one source of routes, stream settings, schema and environment: check its contract.

No network and no AWS: the template is parsed with cfn-lint's CloudFormation-aware YAML loader (it
understands the short tags !Ref, !GetAtt, !Sub, !If ...) and linted in-process.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"

CONTRACT_ENV = {
    "EVENTS_TABLE",
    "META_SECRET_ID",
    "VONAGE_SECRET_ID",
    "GRAPH_API_BASE",
    "GRAPH_API_VERSION",
    "VONAGE_API_BASE",
    "RETENTION_DAYS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
ROUTES = {
    ("GET", "/meta/webhook"),
    ("POST", "/meta/webhook"),
    ("POST", "/vonage/inbound"),
    ("POST", "/vonage/status"),
    ("POST", "/meta/data-deletion"),
    ("GET", "/meta/data-deletion/{code}"),
}
DATA_SERVICES = ("dynamodb:", "sqs:", "secretsmanager:")


@cache
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(TEMPLATE))


def resources() -> dict[str, Any]:
    return template()["Resources"]


def props(logical_id: str) -> dict[str, Any]:
    return resources()[logical_id]["Properties"]


def stream_event() -> dict[str, Any]:
    return props("ReplyFunction")["Events"]["Stream"]["Properties"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def iam_statements() -> list[tuple[str, dict[str, Any]]]:
    """Every inline statement: SAM function `Policies` and IAM role `Policies` documents."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, resource in resources().items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            for policy in as_list(properties.get("Policies", [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    found += [(name, statement) for statement in policy["Statement"]]
        elif resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                found += [(name, statement) for statement in policy["PolicyDocument"]["Statement"]]
    return found


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge-style matching for the subset used by Lambda filter criteria here: exact values."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(key in value and matches(pattern[key], value[key]) for key in pattern)
    assert all(isinstance(option, str | int | float | bool) for option in pattern), "only literal lists expected"
    return value in pattern


def stream_record(event_name: str, record_type: str | None) -> dict[str, Any]:
    image = {"pk": {"S": "EVT#meta#m1"}}
    if record_type is not None:
        image["record_type"] = {"S": record_type}
    record: dict[str, Any] = {"eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": {"Keys": {}}}
    if event_name != "REMOVE":
        record["dynamodb"]["NewImage"] = image
    return record


def test_cfn_lint_reports_nothing():
    # Given the template / When cfn-lint runs in-process / Then it finds no error, warning or info
    assert [str(match) for match in lint_file(TEMPLATE)] == []


def test_globals_set_runtime_architecture_tracing_and_layer():
    function_globals = template()["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    assert function_globals["Tracing"] == {"Ref": "Tracing"}
    assert function_globals["Layers"] == [{"Ref": "MessengerLayer"}]


def test_tracing_is_a_parameter_off_by_default_and_powertools_follows_it():
    # X-Ray costs per trace and Lambda's sampling cannot be changed: tracing is switched on to investigate
    parameter = template()["Parameters"]["Tracing"]
    assert parameter["Default"] == "PassThrough" and set(parameter["AllowedValues"]) == {"Active", "PassThrough"}
    assert template()["Conditions"]["TracingActive"] == {"Fn::Equals": [{"Ref": "Tracing"}, "Active"]}
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_TRACE_DISABLED"] == {"Fn::If": ["TracingActive", "false", "true"]}


@pytest.mark.parametrize(("function_id", "memory_mb"), [("WebhookFunction", 1024), ("ReplyFunction", 256)])
def test_each_function_has_the_memory_its_measured_cpu_and_waits_call_for(function_id, memory_mb):
    # The webhook is CPU-bound with a provider deadline; the reply function mostly waits for the Send API
    assert "MemorySize" not in template()["Globals"]["Function"]
    assert props(function_id)["MemorySize"] == memory_mb


def test_retention_and_point_in_time_recovery_are_parameters_fit_for_short_lived_items():
    parameters = template()["Parameters"]
    # 14 days: the failure queue keeps a batch 14 days, and a redrive needs its items
    queue_days = props("ReplyFailureQueue")["MessageRetentionPeriod"] // 86_400
    assert int(parameters["RetentionDays"]["Default"]) == queue_days == 14
    assert parameters["PointInTimeRecovery"]["Default"] == "false"
    assert props("EventsTable")["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": {"Fn::If": ["PointInTimeRecoveryOn", True, False]}
    }


def test_table_capacity_is_on_demand_by_default_and_auto_scaled_on_request():
    parameters, conditions = template()["Parameters"], template()["Conditions"]
    assert parameters["TableCapacity"]["Default"] == "OnDemand"
    assert conditions["TableAutoScaled"] == {"Fn::Equals": [{"Ref": "TableCapacity"}, "AutoScaled"]}
    table = props("EventsTable")
    assert table["BillingMode"] == {"Fn::If": ["TableAutoScaled", "PROVISIONED", "PAY_PER_REQUEST"]}
    assert table["ProvisionedThroughput"]["Fn::If"][0] == "TableAutoScaled"
    assert table["ProvisionedThroughput"]["Fn::If"][2] == {"Ref": "AWS::NoValue"}  # on demand: no figures
    # AutoScaled: reads and writes each a scalable target of the table with a 70% target-tracking policy
    scaled = {}
    for resource in resources().values():
        if resource["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy":
            assert resource["Condition"] == "TableAutoScaled"
            target = resources()[resource["Properties"]["ScalingTargetId"]["Ref"]]
            assert target["Condition"] == "TableAutoScaled"
            assert target["Properties"]["ResourceId"] == {"Fn::Sub": "table/${EventsTable}"}
            config = resource["Properties"]["TargetTrackingScalingPolicyConfiguration"]
            metric = config["PredefinedMetricSpecification"]["PredefinedMetricType"]
            scaled[target["Properties"]["ScalableDimension"]] = (metric, config["TargetValue"])
    assert scaled == {
        "dynamodb:table:WriteCapacityUnits": ("DynamoDBWriteCapacityUtilization", 70),
        "dynamodb:table:ReadCapacityUnits": ("DynamoDBReadCapacityUtilization", 70),
    }


LOCAL_OVERRIDES = {
    "AWS_ENDPOINT_URL_DYNAMODB": "",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER": "",
    "AWS_ENDPOINT_URL_SQS": "",
}


def test_globals_environment_has_exactly_the_contract_names():
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    own = {"HANDOVER_PAUSE_SECONDS", "POWERTOOLS_TRACE_DISABLED"}
    assert set(variables) == CONTRACT_ENV | set(LOCAL_OVERRIDES) | own
    # Declared empty only so that `sam local --env-vars events/env.json` can override them.
    assert {name: variables[name] for name in LOCAL_OVERRIDES} == LOCAL_OVERRIDES
    assert variables["EVENTS_TABLE"] == {"Ref": "EventsTable"}
    assert variables["POWERTOOLS_SERVICE_NAME"] == "messenger-webhook"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "MessengerWebhook"
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


@pytest.mark.parametrize(
    ("variable", "secret", "parameter", "condition"),
    [
        ("META_SECRET_ID", "MetaSecret", "ExistingMetaSecretArn", "CreateMetaSecret"),
        ("VONAGE_SECRET_ID", "VonageSecret", "ExistingVonageSecretArn", "CreateVonageSecret"),
    ],
)
def test_secret_id_is_the_created_or_the_existing_secret(variable, secret, parameter, condition):
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables[variable] == {"Fn::If": [condition, {"Ref": secret}, {"Ref": parameter}]}
    assert template()["Parameters"][parameter]["Default"] == ""
    assert template()["Conditions"][condition] == {"Fn::Equals": [{"Ref": parameter}, ""]}
    assert resources()[secret]["Condition"] == condition


@pytest.mark.parametrize(
    ("secret", "keys"),
    [
        ("MetaSecret", {"app_secret", "verify_token", "page_tokens"}),
        ("VonageSecret", {"application_id", "private_key", "signature_secret", "api_key"}),
    ],
)
def test_placeholder_secrets_have_the_contract_shape(secret, keys):
    placeholder = json.loads(props(secret)["SecretString"])
    assert set(placeholder) == keys
    if "page_tokens" in placeholder:
        assert placeholder["page_tokens"] == {}


def test_webhook_serves_all_six_routes_with_payload_format_2():
    function = props("WebhookFunction")
    assert (function["CodeUri"], function["Handler"]) == ("functions/webhook/", "app.lambda_handler")
    events = function["Events"].values()
    assert all(event["Type"] == "HttpApi" for event in events)
    assert all(event["Properties"]["ApiId"] == {"Ref": "HttpApi"} for event in events)
    assert all(event["Properties"]["PayloadFormatVersion"] == "2.0" for event in events)
    assert {(event["Properties"]["Method"], event["Properties"]["Path"]) for event in events} == ROUTES


def test_http_api_fails_on_warnings_logs_access_and_throttles():
    api = props("HttpApi")
    assert api["FailOnWarnings"] is True
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogs", "Arn"]}
    assert {"ThrottlingBurstLimit", "ThrottlingRateLimit"} <= set(api["DefaultRouteSettings"])


def test_http_api_throttling_comes_from_parameters():
    # Given the template / Then the HTTP API's rate and burst are parameters, not hard-coded numbers
    settings = props("HttpApi")["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingBurstLimit": {"Ref": "HttpApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "HttpApiThrottlingRateLimit"},
    }
    parameters = template()["Parameters"]
    rate, burst = parameters["HttpApiThrottlingRateLimit"], parameters["HttpApiThrottlingBurstLimit"]
    assert (rate["Type"], burst["Type"]) == ("Number", "Number")
    # And the defaults are above the old 100/200 that a busy Page's webhook traffic could exceed
    assert rate["Default"] >= 1000 and burst["Default"] >= rate["Default"]
    assert burst["MaxValue"] <= 5000 and rate["MaxValue"] <= 10000  # API Gateway's account-level defaults


def test_reply_function_has_a_reserved_concurrency_parameter():
    import re

    from messenger.reply.batch import DEFAULT_WORKERS

    parameter = template()["Parameters"]["ReplyReservedConcurrency"]
    # Given the template / Then the reply function's reserved concurrency is the parameter, unless 0 or empty
    assert props("ReplyFunction")["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReplyConcurrencyUnreserved", {"Ref": "AWS::NoValue"}, {"Ref": "ReplyReservedConcurrency"}]
    }
    assert template()["Conditions"]["ReplyConcurrencyUnreserved"] == {
        "Fn::Or": [
            {"Fn::Equals": [{"Ref": "ReplyReservedConcurrency"}, ""]},
            {"Fn::Equals": [{"Ref": "ReplyReservedConcurrency"}, "0"]},
        ]
    }
    pattern = re.compile(parameter["AllowedPattern"])
    assert all(pattern.fullmatch(v) for v in ("", "0", "4", "1000"))
    assert not any(pattern.fullmatch(v) for v in ("-1", "04", "abc", "10000"))
    # And the default keeps one Page's burst near Meta's 300 Send API calls/s per Page: each invocation has
    # DEFAULT_WORKERS conversations in flight, and a send takes about 0.4 s
    default = int(parameter["Default"])
    assert 1 <= default and default * DEFAULT_WORKERS / 0.4 <= 1.1 * 300


def test_reply_stream_event_reports_partial_failures_and_gives_up_to_the_queue():
    function = props("ReplyFunction")
    assert (function["CodeUri"], function["Handler"]) == ("functions/reply/", "app.lambda_handler")
    stream = stream_event()
    assert stream["Stream"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert 0 <= stream["MaximumRetryAttempts"] <= 10
    assert 60 <= stream["MaximumRecordAgeInSeconds"] <= 3600
    assert stream["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["ReplyFailureQueue", "Arn"]},
    }
    assert stream["BatchSize"] == 25
    assert stream["StartingPosition"] in ("LATEST", "TRIM_HORIZON")


@pytest.mark.parametrize(
    ("event_name", "record_type", "passes"),
    [
        ("INSERT", "inbound", True),
        ("MODIFY", "inbound", False),
        ("REMOVE", "inbound", False),
        ("INSERT", "echo", False),
        ("INSERT", "event", False),
        ("INSERT", "outbound", False),
        ("INSERT", "reply", False),
        ("INSERT", None, False),
    ],
)
def test_stream_filter_passes_only_new_inbound_messages(event_name, record_type, passes):
    filters = stream_event()["FilterCriteria"]["Filters"]
    assert len(filters) == 1
    pattern = json.loads(filters[0]["Pattern"])
    assert matches(pattern, stream_record(event_name, record_type)) is passes


def test_reply_function_adds_its_settings_to_the_contract_environment():
    variables = props("ReplyFunction")["Environment"]["Variables"]
    assert variables == {
        "RESPONDER_RULES_FILE": "",
        "HUMAN_AGENT_TAG_ENABLED": "false",
        "RESPONDER_CLASS": "",
        "PROFILE_LOOKUP": "false",
    }


def test_layer_is_built_by_its_makefile_for_python313_arm64():
    layer = resources()["MessengerLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert (TEMPLATE.parent / "layers" / "messenger" / "Makefile").is_file()
    assert layer["Properties"]["ContentUri"] == "layers/messenger/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


@pytest.mark.parametrize("function_id", ["WebhookFunction", "ReplyFunction"])
def test_functions_are_built_by_the_functions_makefile(function_id: str):
    # sam build runs `make build-<id>` from functions/Makefile (ContextPath) in a copy of the CodeUri.
    assert resources()[function_id]["Metadata"] == {"BuildMethod": "makefile", "ContextPath": "functions"}
    dry_run = subprocess.run(
        ["make", "-n", "-f", "functions/Makefile", f"build-{function_id}", "ARTIFACTS_DIR=out"],
        cwd=TEMPLATE.parent,
        capture_output=True,
        text=True,
    )
    assert dry_run.returncode == 0, dry_run.stderr


def test_events_table_keeps_its_schema_stream_ttl_pitr_and_encryption():
    table = props("EventsTable")
    # Keyed by conversation (pk) and item kind#id (sk), without an index: every item is paid once.
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {"pk": "S", "sk": "S"}
    assert "GlobalSecondaryIndexes" not in table and "LocalSecondaryIndexes" not in table
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_no_wildcard_action_or_resource_for_data_services():
    statements = iam_statements()
    assert statements, "expected inline IAM statements"
    for owner, statement in statements:
        actions = as_list(statement["Action"])
        if not any(action == "*" or action.startswith(DATA_SERVICES) for action in actions):
            continue
        assert not any(action == "*" or action.endswith(":*") for action in actions), (owner, statement)
        assert "*" not in as_list(statement["Resource"]), (owner, statement)


def test_reply_function_role_is_explicit_so_sam_attaches_no_account_wide_stream_policy():
    # SAM adds AWSLambdaDynamoDBExecutionRole (every stream, Resource "*") only to roles it makes.
    assert props("ReplyFunction")["Role"] == {"Fn::GetAtt": ["ReplyFunctionRole", "Arn"]}
    managed = json.dumps(props("ReplyFunctionRole")["ManagedPolicyArns"])
    assert "DynamoDB" not in managed


def test_every_function_has_a_log_group_with_retention():
    for function in ("WebhookFunction", "ReplyFunction"):
        group = props(f"{function}LogGroup")
        assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
        assert "RetentionInDays" in group


def test_alarms_cover_errors_throttles_iterator_age_and_the_failure_queue():
    alarms = [r["Properties"] for r in resources().values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {(alarm["Namespace"], alarm["MetricName"]) for alarm in alarms if "Namespace" in alarm}
    assert {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    } <= watched
    assert all(alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}] for alarm in alarms)


def test_outputs_give_every_url_and_id_a_deployer_needs():
    outputs = template()["Outputs"]
    assert {
        "MetaWebhookUrl",
        "VonageInboundUrl",
        "VonageStatusUrl",
        "MetaDataDeletionUrl",
        "HttpApiUrl",
        "EventsTableName",
        "ReplyFailureQueueUrl",
        "MetaSecretArn",
        "VonageSecretArn",
    } <= set(outputs)
    assert outputs["MetaWebhookUrl"]["Value"] == {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/meta/webhook"
    }
    assert all(output.get("Description") for output in outputs.values())


def test_table_permissions_are_the_verbs_the_store_uses():
    by_sid = {(owner, statement.get("Sid")): statement for owner, statement in iam_statements()}
    webhook = next(s for (owner, sid), s in by_sid.items() if sid == "EventsTableReadWrite" and "Webhook" in owner)
    reply = next(s for (owner, sid), s in by_sid.items() if sid == "EventsTableReadWrite" and "Reply" in owner)
    assert sorted(webhook["Action"]) == [
        "dynamodb:BatchWriteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
    ]
    assert sorted(reply["Action"]) == ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
    assert webhook["Resource"] == reply["Resource"] == {"Fn::GetAtt": ["EventsTable", "Arn"]}
