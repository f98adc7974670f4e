"""deploy_local.checks: what `make deploy-local` expects the deploy of template.yaml to create."""

from __future__ import annotations

from typing import Any

from deploy_local.checks import condition_values, expected_resources, missing_resources
from local.template import load_template

PARAMETERS = {"Stage": "dev", "GraphApiBase": "http://127.0.0.1:1", "VonageApiBase": "http://127.0.0.1:1"}


def test_the_template_conditions_for_the_local_deploy() -> None:
    conditions = condition_values(load_template(), PARAMETERS)
    assert conditions == {
        "CreateMetaSecret": True,
        "CreateVonageSecret": True,
        "HasAlarmEmail": False,
        "PointInTimeRecoveryOn": False,
        "ReplyConcurrencyUnreserved": False,
        "TableAutoScaled": False,
        "TracingActive": False,
    }
    with_existing = condition_values(
        load_template(), {**PARAMETERS, "ExistingMetaSecretArn": "arn:x", "AlarmEmail": "a@b"}
    )
    assert (with_existing["CreateMetaSecret"], with_existing["HasAlarmEmail"]) == (False, True)
    assert condition_values(load_template(), {"ReplyReservedConcurrency": "0"})["ReplyConcurrencyUnreserved"]


def test_the_serverless_resources_expand_as_sam_documents() -> None:
    expected = expected_resources(load_template(), PARAMETERS)
    # Given the SAM resources: functions, their role, permissions and stream mapping; the HTTP API and its stage
    assert expected["WebhookFunction"] == "AWS::Lambda::Function"
    assert expected["WebhookFunctionRole"] == "AWS::IAM::Role"
    assert expected["ReplyFunctionRole"] == "AWS::IAM::Role"  # declared by the template itself
    assert expected["WebhookFunctionMetaEventsPermission"] == "AWS::Lambda::Permission"
    assert expected["ReplyFunctionStream"] == "AWS::Lambda::EventSourceMapping"
    assert expected["HttpApi"] == "AWS::ApiGatewayV2::Api"
    assert expected["HttpApiApiGatewayDefaultStage"] == "AWS::ApiGatewayV2::Stage"
    assert expected["MessengerLayer*"] == "AWS::Lambda::LayerVersion"
    # And a resource whose condition is false is not expected
    assert "AlarmEmailSubscription" not in expected
    assert expected["ReplyPermanentFailureRateAlarm"] == "AWS::CloudWatch::Alarm"


def deployed(logical_id: str, kind: str, status: str = "CREATE_COMPLETE") -> dict[str, Any]:
    return {logical_id: {"ResourceType": kind, "ResourceStatus": status}}


def test_a_missing_failed_or_mistyped_resource_is_reported() -> None:
    expected = {"Table": "AWS::DynamoDB::Table", "Layer*": "AWS::Lambda::LayerVersion", "Queue": "AWS::SQS::Queue"}
    stack = {
        **deployed("Table", "AWS::DynamoDB::Table"),
        **deployed("Layer0a1b2c3d", "AWS::Lambda::LayerVersion"),
        **deployed("Queue", "AWS::SQS::Queue"),
    }
    assert missing_resources(expected, stack) == []
    assert missing_resources(expected, {**stack, **deployed("Queue", "AWS::SQS::Queue", "CREATE_FAILED")}) == [
        "Queue (AWS::SQS::Queue)"
    ]
    assert missing_resources(expected, {**stack, **deployed("Table", "AWS::SQS::Queue")}) == [
        "Table (AWS::DynamoDB::Table)"
    ]
    without_layer = {k: v for k, v in stack.items() if not k.startswith("Layer")}
    assert missing_resources(expected, without_layer) == ["Layer* (AWS::Lambda::LayerVersion)"]
