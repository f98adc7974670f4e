"""What the stack deployed into the emulator must show. Every check raises AssertionError with what it saw.

The stack is read the way an operator reads a deployed one (CloudFormation outputs and resources, the
services' own APIs); requests reach it only through its outputs' URLs, signed as Meta and Vonage sign them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from devkit import payloads, polling
from devkit.http_client import http
from devkit.lambda_code import add_layers_to_path
from devkit.local_aws import REGION
from devkit.sandbox_secrets import sandbox_secrets
from local.sandbox import Sandbox
from local.template import http_routes, load_template

add_layers_to_path()
from messenger.storage import from_item  # noqa: E402 - needs the layer on sys.path

REPLY_TIMEOUT_S = 60
QUIET_S = 3.0  # after the reply: nothing more may be sent for this long ("answered once")
URL_OUTPUTS = ("HttpApiUrl", "MetaWebhookUrl", "MetaDataDeletionUrl", "VonageInboundUrl", "VonageStatusUrl")
# What SAM makes of each serverless resource (the "generated resources" of the SAM specification).
API_STAGE_SUFFIX = "ApiGatewayDefaultStage"


def wait_until(predicate: Callable[[], Any], what: str) -> Any:
    return polling.wait_until(predicate, REPLY_TIMEOUT_S, interval=0.2, what=what)


class Aws:
    """boto3 clients for the emulator (its root caller), and nothing else."""

    def __init__(self, endpoint: str, credentials: dict[str, str]) -> None:
        self.session = boto3.session.Session(
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
        )
        self.endpoint = endpoint
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint)
        return self._clients[service]


@dataclass
class DeployedStack:
    aws: Aws
    name: str
    outputs: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def refresh(self) -> DeployedStack:
        cloudformation = self.aws("cloudformation")
        stack = cloudformation.describe_stacks(StackName=self.name)["Stacks"][0]
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        paginator = cloudformation.get_paginator("list_stack_resources")
        self.resources = {
            r["LogicalResourceId"]: r
            for page in paginator.paginate(StackName=self.name)
            for r in page["StackResourceSummaries"]
        }
        return self

    def physical(self, logical_id: str) -> str:
        return str(self.resources[logical_id]["PhysicalResourceId"])

    @property
    def table(self) -> str:
        return self.outputs["EventsTableName"]

    def items(self, user: str) -> list[dict[str, Any]]:
        pages = self.aws("dynamodb").get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True)
        items = [from_item(item) for page in pages for item in page["Items"]]
        return [i for i in items if i.get("user_id") == user or user in json.dumps(i, default=str)]


# -- the template's resources ------------------------------------------------------------------------------


def condition_values(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, bool]:
    """The template's Conditions for these parameter values (Fn::Equals/Not/And/Or over Refs and literals)."""
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    values.update(parameters)
    conditions = template.get("Conditions", {})
    cache: dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and "Ref" in node:
            return values[node["Ref"]]
        return evaluate(node) if isinstance(node, dict) else str(node)

    def evaluate(node: Any) -> bool:
        ((function, args),) = node.items()
        if function == "Fn::Equals":
            return bool(value(args[0]) == value(args[1]))
        if function == "Fn::Not":
            return not evaluate(args[0])
        if function == "Fn::And":
            return all(evaluate(a) for a in args)
        if function == "Fn::Or":
            return any(evaluate(a) for a in args)
        if function == "Condition":
            return named(args)
        raise ValueError(f"condition function {function} is not handled here")

    def named(name: str) -> bool:
        if name not in cache:
            cache[name] = evaluate(conditions[name])
        return cache[name]

    return {name: named(name) for name in conditions}


def expected_resources(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, str]:
    """Logical id -> CloudFormation type of what the deploy must create (prefix ids end in '*')."""
    conditions = condition_values(template, parameters)
    expected: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Condition") and not conditions[resource["Condition"]]:
            continue
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::Serverless::Function":
            expected[logical_id] = "AWS::Lambda::Function"
            if "Role" not in props:
                expected[f"{logical_id}Role"] = "AWS::IAM::Role"
            for event_id, event in (props.get("Events") or {}).items():
                if event["Type"] == "HttpApi":
                    expected[f"{logical_id}{event_id}Permission"] = "AWS::Lambda::Permission"
                elif event["Type"] == "DynamoDB":
                    expected[f"{logical_id}{event_id}"] = "AWS::Lambda::EventSourceMapping"
        elif kind == "AWS::Serverless::HttpApi":
            expected[logical_id] = "AWS::ApiGatewayV2::Api"
            expected[f"{logical_id}{API_STAGE_SUFFIX}"] = "AWS::ApiGatewayV2::Stage"
        elif kind == "AWS::Serverless::LayerVersion":
            expected[f"{logical_id}*"] = "AWS::Lambda::LayerVersion"  # SAM appends a content hash
        else:
            expected[logical_id] = kind
    return expected


def missing_resources(expected: dict[str, str], deployed: dict[str, dict[str, Any]]) -> list[str]:
    """Expected resources that are not in the stack complete and of their type."""

    def present(logical_id: str, kind: str) -> bool:
        ids = [i for i in deployed if i.startswith(logical_id[:-1])] if logical_id.endswith("*") else [logical_id]
        return any(
            i in deployed
            and deployed[i]["ResourceType"] == kind
            and deployed[i]["ResourceStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
            for i in ids
        )

    return [f"{logical_id} ({kind})" for logical_id, kind in expected.items() if not present(logical_id, kind)]


def resources_created(stack: DeployedStack, parameters: dict[str, str]) -> int:
    expected = expected_resources(load_template(), parameters)
    missing = missing_resources(expected, stack.resources)
    assert not missing, f"not created: {', '.join(missing)}"
    routes = stack.aws("apigatewayv2").get_routes(ApiId=stack.physical("HttpApi"))["Items"]
    wanted = {f"{route.method} {route.path}" for route in http_routes()}
    got = {route["RouteKey"] for route in routes}
    assert got == wanted, f"HTTP API routes {sorted(got)}, template {sorted(wanted)}"
    return len(expected)


# -- outputs -----------------------------------------------------------------------------------------------


def outputs_reachable(stack: DeployedStack) -> None:
    """Every output leads to what it names: the URLs answer from the API, the ids name existing resources."""
    aws, out = stack.aws, stack.outputs
    missing = sorted(set(load_template()["Outputs"]) - set(out))
    assert not missing, f"outputs missing: {missing}"
    answers = {
        "HttpApiUrl": http("GET", f"{out['HttpApiUrl']}/"),
        "MetaWebhookUrl": http("GET", out["MetaWebhookUrl"]),
        "MetaDataDeletionUrl": http("POST", out["MetaDataDeletionUrl"], b"signed_request=x"),
        "VonageInboundUrl": http("POST", out["VonageInboundUrl"], b"{}"),
        "VonageStatusUrl": http("POST", out["VonageStatusUrl"], b"{}"),
    }
    wanted = {
        "HttpApiUrl": 404,  # no route at the root: API Gateway's own 404
        "MetaWebhookUrl": 403,  # the verify handshake without a token
        "MetaDataDeletionUrl": 401,  # a signed_request Meta did not sign
        "VonageInboundUrl": 503,  # unsigned: Vonage would re-send it signed
        "VonageStatusUrl": 503,
    }
    wrong = {k: v for k, v in answers.items() if v[0] != wanted[k]}
    assert not wrong, f"output URLs answered {wrong}, expected {wanted}"
    assert aws("dynamodb").describe_table(TableName=out["EventsTableName"])["Table"]["TableStatus"] == "ACTIVE"
    aws("sqs").get_queue_attributes(QueueUrl=out["ReplyFailureQueueUrl"], AttributeNames=["QueueArn"])
    for key in ("MetaSecretArn", "VonageSecretArn"):
        assert out[key].startswith("arn:aws:secretsmanager:"), f"{key} is not an ARN: {out[key]}"
        aws("secretsmanager").describe_secret(SecretId=out[key])
    aws("sns").get_topic_attributes(TopicArn=out["AlarmTopicArn"])
    dashboard = out["DashboardUrl"].rsplit("dashboards:name=", 1)[1]
    aws("cloudwatch").get_dashboard(DashboardName=dashboard)


def put_sandbox_secrets(stack: DeployedStack) -> None:
    """As docs/deploy.md step 2, with the sandbox's values: `put-secret-value` on the two secret outputs."""
    client = stack.aws("secretsmanager")
    for provider, value in sandbox_secrets().items():
        secret_id = stack.outputs[f"{provider.capitalize()}SecretArn"]
        client.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))


def iam_enforced(stack: DeployedStack) -> None:
    """The emulator evaluates IAM (AUTH=true), as AWS: a principal no policy allows is refused the stack's secret
    and table. (The functions run with their roles' sessions, so a permission missing from the template fails
    their calls here too, and every check below passes only with the template's grants.)"""
    iam = stack.aws("iam")
    name = f"deploy-local-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    other = Aws(
        stack.aws.endpoint, {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    )
    calls: dict[str, Callable[[], Any]] = {
        "secretsmanager:GetSecretValue": lambda: other("secretsmanager").get_secret_value(
            SecretId=stack.outputs["MetaSecretArn"]
        ),
        "dynamodb:GetItem": lambda: other("dynamodb").get_item(
            TableName=stack.table, Key={"pk": {"S": "x"}, "sk": {"S": "x"}}
        ),
    }
    for action, call in calls.items():
        try:
            call()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            assert "AccessDenied" in code, f"{action} without a policy: {code}"
        else:
            raise AssertionError(f"{action} was allowed to a principal without any policy: IAM is not enforced")


# -- dashboard and alarms ----------------------------------------------------------------------------------


def dashboard_and_alarms(stack: DeployedStack) -> int:
    cloudwatch = stack.aws("cloudwatch")
    alarm_ids = [i for i, r in stack.resources.items() if r["ResourceType"] == "AWS::CloudWatch::Alarm"]
    names = [stack.physical(i) for i in alarm_ids]
    found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]}
    assert sorted(found) == sorted(names), f"alarms {sorted(found)}, stack {sorted(names)}"
    template = load_template()["Resources"]
    for logical_id, name in zip(alarm_ids, names, strict=True):
        props, alarm = template[logical_id]["Properties"], found[name]
        if "Metrics" in props:
            ids = [m.get("Id") for m in alarm.get("Metrics") or []]
            assert ids == [m["Id"] for m in props["Metrics"]], f"{logical_id}: metric math {ids}"
        else:
            assert (alarm.get("Namespace"), alarm.get("MetricName")) == (props["Namespace"], props["MetricName"])
        assert alarm.get("AlarmActions") == [stack.outputs["AlarmTopicArn"]], (
            f"{logical_id}: {alarm.get('AlarmActions')}"
        )
    body = json.loads(cloudwatch.get_dashboard(DashboardName=stack.physical("OperationsDashboard"))["DashboardBody"])
    widgets = body["widgets"]
    listed = next(w for w in widgets if w["type"] == "alarm")["properties"]["alarms"]
    arns = {a["AlarmArn"] for a in found.values()}
    assert set(listed) == arns, f"the dashboard's alarm widget lists {sorted(set(listed) - arns)} that do not exist"
    declared = json.loads(template["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])["widgets"]
    assert [w["type"] for w in widgets] == [w["type"] for w in declared], "the dashboard's widgets differ"
    return len(names)


# -- messages ----------------------------------------------------------------------------------------------


def new_user() -> str:
    return "7" + str(uuid.uuid4().int)[:15]


def meta_text(user: str, page_id: str, text: str) -> dict[str, Any]:
    message = payloads.meta_message(
        user, page_id, payloads.now_ms(), message={"mid": f"m_dl_{uuid.uuid4().hex}", "text": text}
    )
    return payloads.meta_page(message, page_id=page_id)


def sent_ok(sandbox: Sandbox, user: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.list_requests(recipient=user) if 200 <= int(r.get("status", 0)) < 300]


def answered_once(stack: DeployedStack, sandbox: Sandbox, user: str, provider: str) -> dict[str, Any]:
    """Exactly one event stored, one reply claim settled `sent`, one accepted send, its status up to `read`."""
    sends = wait_until(lambda: sent_ok(sandbox, user), what=f"the {provider} reply to {user}")
    message_id = sends[0]["response"].get("message_id") or sends[0]["response"].get("message_uuid")

    def read() -> bool:
        return any(i["sk"] == f"MSG#{message_id}" and i.get("status") == "read" for i in stack.items(user))

    wait_until(read, what=f"the {provider} reply's status reaching read through the deployed API")
    time.sleep(QUIET_S)
    sends = sent_ok(sandbox, user)
    items = stack.items(user)
    inbound = [i for i in items if i.get("record_type") == "inbound"]
    claims = [i for i in items if i["sk"].startswith("REPLY#")]
    assert len(sends) == 1, f"{provider}: {len(sends)} replies sent to {user}"
    assert sends[0]["provider"] == provider, sends[0]
    assert len(inbound) == 1, f"{provider}: {len(inbound)} inbound items stored"
    assert [c["state"] for c in claims] == ["sent"], f"{provider}: reply claims {claims}"
    return inbound[0]


def messages_answered_once(stack: DeployedStack, sandbox: Sandbox) -> list[tuple[str, str]]:
    """A signed Meta message and a signed Vonage inbound, each sent twice (a redelivery); a forged one."""
    secrets = sandbox_secrets()
    meta, vonage = secrets["meta"], secrets["vonage"]
    page_id = next(iter(meta["page_tokens"]))
    out = stack.outputs
    kept = []

    user = new_user()
    body, headers = payloads.signed_meta(meta_text(user, page_id, "hello"), meta)
    first, again = (
        http("POST", out["MetaWebhookUrl"], body, headers),
        http("POST", out["MetaWebhookUrl"], body, headers),
    )
    assert first == (200, {"stored": 1, "duplicates": 0}), first
    assert again == (200, {"stored": 0, "duplicates": 1}), again
    item = answered_once(stack, sandbox, user, "meta")
    kept.append((user, item["sk"]))

    user = new_user()
    inbound = payloads.vonage_inbound(str(uuid.uuid4()), page_id=page_id, user=user, text="hello")
    body, headers = payloads.signed_vonage(inbound, vonage)
    first, again = (
        http("POST", out["VonageInboundUrl"], body, headers),
        http("POST", out["VonageInboundUrl"], body, headers),
    )
    assert first[0] == 200 and again[0] == 200 and again[1].get("duplicates") == 1, (first, again)
    item = answered_once(stack, sandbox, user, "vonage")
    kept.append((user, item["sk"]))

    forged_refused(stack, sandbox, page_id)
    return kept


def forged_refused(stack: DeployedStack, sandbox: Sandbox, page_id: str) -> None:
    user = new_user()
    body = payloads.encode(meta_text(user, page_id, "forged"))
    forged = {payloads.META_SIGNATURE: "sha256=" + "0" * 64}
    status, answer = http("POST", stack.outputs["MetaWebhookUrl"], body, forged)
    assert status in (401, 403), (status, answer)
    vonage_user = new_user()
    inbound = payloads.vonage_inbound(str(uuid.uuid4()), page_id=page_id, user=vonage_user, text="forged")
    other = {**sandbox_secrets()["vonage"], "signature_secret": "not-the-secret-" + uuid.uuid4().hex}
    body, headers = payloads.signed_vonage(inbound, other)
    status, answer = http("POST", stack.outputs["VonageInboundUrl"], body, headers)
    assert status == 401, (status, answer)
    time.sleep(QUIET_S)
    for who in (user, vonage_user):
        assert stack.items(who) == [], f"a forged request stored {stack.items(who)}"
        assert sandbox.list_requests(recipient=who) == [], "a forged request was answered"


# -- failure queue and redrive -----------------------------------------------------------------------------


def transient_failure_queued(stack: DeployedStack, sandbox: Sandbox) -> str:
    """A message whose reply keeps failing transiently: its stream records reach the deployed failure queue."""
    secrets = sandbox_secrets()
    page_id = next(iter(secrets["meta"]["page_tokens"]))
    user = new_user()
    sandbox.faults.add({"provider": "meta", "fault": "5xx", "count": 1000, "recipient": user})
    body, headers = payloads.signed_meta(meta_text(user, page_id, "hello"), secrets["meta"])
    assert http("POST", stack.outputs["MetaWebhookUrl"], body, headers)[0] == 200
    sqs = stack.aws("sqs")

    def queued() -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.outputs["ReplyFailureQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    wait_until(queued, what="the failed batch's record in the failure queue")
    sandbox.faults.clear()
    assert sent_ok(sandbox, user) == [], "the reply went out although every send failed"
    assert sandbox.list_requests(recipient=user), "the reply function never tried to send"
    return user


def redriven(stack: DeployedStack, sandbox: Sandbox, user: str, redrive_output: str) -> None:
    summary = json.loads([line for line in redrive_output.splitlines() if line.startswith('{"messages"')][-1])
    assert summary["deleted"] >= 1 and summary["kept"] == 0 and summary["failed_records"] == 0, summary
    wait_until(lambda: sent_ok(sandbox, user), what="the re-driven reply")
    time.sleep(QUIET_S)
    assert len(sent_ok(sandbox, user)) == 1, "the re-driven message was answered more than once"
    attributes = stack.aws("sqs").get_queue_attributes(
        QueueUrl=stack.outputs["ReplyFailureQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0", attributes


# -- update and delete -------------------------------------------------------------------------------------


def function_environment(stack: DeployedStack, logical_id: str) -> dict[str, str]:
    config = stack.aws("lambda").get_function_configuration(FunctionName=stack.physical(logical_id))
    return dict(config.get("Environment", {}).get("Variables", {}))


def survived_update(stack: DeployedStack, kept: list[tuple[str, str]], table_before: str) -> None:
    assert stack.table == table_before, f"the update replaced the table: {table_before} -> {stack.table}"
    for user, sk in kept:
        assert any(i["sk"] == sk for i in stack.items(user)), f"{sk} of {user} is gone after the update"
    for provider in ("meta", "vonage"):
        value = stack.aws("secretsmanager").get_secret_value(
            SecretId=stack.outputs[f"{provider.capitalize()}SecretArn"]
        )
        assert json.loads(value["SecretString"]) == sandbox_secrets()[provider], f"the {provider} secret was reset"


def retained_after_delete(aws: Aws, name: str, table: str, secret_arns: list[str]) -> None:
    stacks = aws("cloudformation").list_stacks()["StackSummaries"]
    live = [s for s in stacks if s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE"]
    assert not live, f"the stack is still there: {live}"
    # DeletionPolicy: Retain on the table and the secrets, as in AWS
    assert aws("dynamodb").describe_table(TableName=table)["Table"]["TableName"] == table
    for arn in secret_arns:
        aws("secretsmanager").describe_secret(SecretId=arn)
