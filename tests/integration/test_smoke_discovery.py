"""tools.smoke's discovery on moto (CloudFormation, Secrets Manager): what it refuses, and why, without secrets."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from devkit.local_aws import client
from tools import smoke

pytestmark = pytest.mark.integration

META = {"app_secret": "app-secret-value-123", "verify_token": "verify-token-value-456", "page_tokens": {"1": "t"}}
VONAGE = {
    "application_id": "a",
    "private_key": "k",
    "signature_secret": "sig-secret-value-789-0123456789abcdef",
    "api_key": "key1",
}


@pytest.fixture
def aws(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return client("cloudformation", moto_endpoint), client("secretsmanager", moto_endpoint)


def make_stack(cloudformation, secretsmanager, meta=META, drop: str | None = None) -> str:
    run = uuid.uuid4().hex[:8]
    arns = {
        name: secretsmanager.create_secret(Name=f"{run}/{name}", SecretString=json.dumps(value))["ARN"]
        for name, value in (("meta", meta), ("vonage", VONAGE))
    }
    outputs = {
        "MetaWebhookUrl": "http://127.0.0.1:9/meta/webhook",
        "VonageInboundUrl": "http://127.0.0.1:9/vonage/inbound",
        "VonageStatusUrl": "http://127.0.0.1:9/vonage/status",
        "MetaSecretArn": arns["meta"],
        "VonageSecretArn": arns["vonage"],
    }
    outputs.pop(drop or "", None)
    name = f"stack-{run}"
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    return name


def test_discovery_reads_the_outputs_and_both_secrets(aws):
    name = make_stack(*aws)
    deployment = smoke.discover(name)
    assert deployment.meta_webhook_url == "http://127.0.0.1:9/meta/webhook"
    assert deployment.meta["verify_token"] == META["verify_token"] and deployment.page_id == "1"
    assert deployment.vonage["signature_secret"] == VONAGE["signature_secret"]
    assert META["app_secret"] not in repr(deployment) and VONAGE["signature_secret"] not in repr(deployment)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("no-name", "set AWS_SAM_STACK_NAME"),
        ("unknown", "cannot describe stack"),
        ("missing-output", "has no output(s) VonageStatusUrl"),
        ("placeholder", "still holds the placeholder values"),
    ],
)
def test_an_unreadable_stack_exits_2_with_a_reason_and_no_secret(aws, monkeypatch, setup, message):
    monkeypatch.delenv("AWS_SAM_STACK_NAME", raising=False)
    if setup == "unknown":
        monkeypatch.setenv("AWS_SAM_STACK_NAME", "no-such-stack")
    elif setup == "missing-output":
        monkeypatch.setenv("AWS_SAM_STACK_NAME", make_stack(*aws, drop="VonageStatusUrl"))
    elif setup == "placeholder":
        placeholder = {"app_secret": "REPLACE_ME", "verify_token": "REPLACE_ME", "page_tokens": {}}
        monkeypatch.setenv("AWS_SAM_STACK_NAME", make_stack(*aws, meta=placeholder))
    out = io.StringIO()
    assert smoke.main([], out=out) == 2
    assert message in out.getvalue()
    assert VONAGE["signature_secret"] not in out.getvalue()


def test_unreachable_webhook_fails_every_check_without_raising(aws, monkeypatch):
    monkeypatch.setenv("AWS_SAM_STACK_NAME", make_stack(*aws))
    out = io.StringIO()
    assert smoke.main([], out=out) == 1
    text = out.getvalue()
    assert text.count("request failed: URLError") == 5 and "0 passed, 5 failed" in text
    assert META["verify_token"] not in text and META["app_secret"] not in text
