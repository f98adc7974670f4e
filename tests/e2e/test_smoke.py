"""`make smoke` (tools/smoke.py) against moto's CloudFormation and Secrets Manager, with the local stack's HTTP
API standing in for API Gateway; and the e2e suite's discovery of a deployed stack (AWS_SAM_STACK_NAME)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from devkit.local_aws import client
from tests.e2e.conftest import LocalStack
from tests.helpers import ROOT, assert_no_secret_in
from tools import smoke
from tools.smoke import Deployment

pytestmark = pytest.mark.e2e


def create_stack(moto_url: str, outputs: dict[str, str]) -> str:
    """A CloudFormation stack in moto whose outputs are the deployed template's, pointing at the local stack."""
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    client("cloudformation", moto_url).create_stack(StackName=name, TemplateBody=json.dumps(template))
    return name


def stack_outputs(stack: LocalStack, meta_secret: str = "local/meta") -> dict[str, str]:
    secrets = client("secretsmanager", stack.moto_url)
    return {
        "HttpApiUrl": stack.api,
        "MetaWebhookUrl": f"{stack.api}/meta/webhook",
        "VonageInboundUrl": f"{stack.api}/vonage/inbound",
        "VonageStatusUrl": f"{stack.api}/vonage/status",
        "MetaSecretArn": secrets.describe_secret(SecretId=meta_secret)["ARN"],
        "VonageSecretArn": secrets.describe_secret(SecretId="local/vonage")["ARN"],
    }


@pytest.fixture
def aws_is_moto(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", stack.moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", stack.moto_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    yield


def test_smoke_checks_pass_against_the_webhook_under_test(deployment: Deployment) -> None:
    # Locally: the local stack; with AWS_SAM_STACK_NAME: the deployed stack
    results = smoke.run_checks(deployment)
    assert [(r.name, r.ok) for r in results if not r.ok] == []
    assert len(results) == 5


def test_make_smoke_finds_the_stack_through_its_outputs_and_sends_nothing(
    stack: LocalStack, aws_is_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stack whose outputs lead to the local HTTP API and whose secrets are the local stack's
    monkeypatch.setenv("AWS_SAM_STACK_NAME", create_stack(stack.moto_url, stack_outputs(stack)))
    user = f"smoke-{uuid.uuid4().hex[:16]}"
    monkeypatch.setattr(smoke, "synthetic_user", lambda: user)
    out = io.StringIO()
    # When make smoke runs
    code = smoke.main([], out=out)
    # Then every check passed and the output names no secret
    text = out.getvalue()
    assert code == 0, text
    assert text.count("PASS") == 5 and "FAIL" not in text and "5 passed, 0 failed" in text
    assert_no_secret_in(text)
    # And the synthetic echo and status were stored, once each, and nothing was sent to anybody
    stack.settled(quiet_s=0.5)
    kinds = sorted(item["kind"] for item in stack.items(user) if item["sk"].startswith("EVT#"))
    assert kinds == ["echo", "status"], kinds
    assert stack.sends(user) == []
    assert not [i for i in stack.items(user) if i["sk"].startswith("REPLY#")]


def test_make_smoke_fails_when_the_secret_does_not_match_the_deployed_webhook(
    stack: LocalStack, aws_is_moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the stack's Meta secret holds other values than the ones the webhook uses
    other = {
        "app_secret": "other-app-secret-" + uuid.uuid4().hex,
        "verify_token": "other-token-" + uuid.uuid4().hex,
        "page_tokens": {},
    }
    name = f"smoke/other-{uuid.uuid4().hex[:8]}"
    client("secretsmanager", stack.moto_url).create_secret(Name=name, SecretString=json.dumps(other))
    monkeypatch.setenv("AWS_SAM_STACK_NAME", create_stack(stack.moto_url, stack_outputs(stack, meta_secret=name)))
    out = io.StringIO()
    # Then the Meta checks fail, the exit status says so, and still no secret is printed
    assert smoke.main([], out=out) == 1
    text = out.getvalue()
    assert "FAIL  Meta verify handshake" in text and "FAIL  signed Meta echo stored once" in text
    assert "PASS  unsigned Vonage callback answered 503" in text
    assert other["app_secret"] not in text and other["verify_token"] not in text
    assert_no_secret_in(text)


def test_the_e2e_suite_targets_a_deployed_stack_named_by_aws_sam_stack_name(stack: LocalStack) -> None:
    # Given AWS_SAM_STACK_NAME names a stack (in moto) whose outputs lead to the local HTTP API
    name = create_stack(stack.moto_url, stack_outputs(stack))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "PYTEST_"))}
    env.update(
        {
            "AWS_SAM_STACK_NAME": name,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "moto",
            "AWS_SECRET_ACCESS_KEY": "moto",
            "AWS_ENDPOINT_URL_CLOUDFORMATION": stack.moto_url,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": stack.moto_url,
        }
    )
    selected = [
        "tests/e2e/test_smoke.py::test_smoke_checks_pass_against_the_webhook_under_test",
        "tests/e2e/test_local_stack.py::test_meta_verify_handshake",
        "tests/e2e/test_local_stack.py::test_unknown_routes_are_api_gateway_404s",
        "tests/e2e/test_local_stack.py::test_echoes_are_stored_and_never_answered",
    ]
    # When the e2e suite runs in that environment
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *selected],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Then the tests that only need URLs and secrets ran against it, and those that need the local stack skipped
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "3 passed, 1 skipped" in run.stdout, run.stdout[-3000:]
    assert f"AWS_SAM_STACK_NAME={name} targets a deployed one" in run.stdout
