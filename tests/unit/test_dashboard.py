"""The operations dashboard and the alarms on what a Page owner feels (template.yaml).

That the handlers really print every custom metric named here, with this namespace and dimension, is
checked by driving them in tests/integration/test_metrics_contract.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from local.template import dashboard_widgets, load_template, named_metrics, resources

DASHBOARD = "OperationsDashboard"
USER_ALARMS = (
    "ReplyPermanentFailureRateAlarm",
    "ReplyAmbiguousAlarm",
    "ReplyGivenUpAlarm",
    "UnsignedCallbacksAlarm",
    "Webhook5xxAlarm",
)


def powertools_env() -> tuple[str, str]:
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    return variables["POWERTOOLS_METRICS_NAMESPACE"], variables["POWERTOOLS_SERVICE_NAME"]


def dashboard_metrics() -> set[tuple[str, str]]:
    return {
        (row[0], row[1])
        for widget in dashboard_widgets(DASHBOARD)
        for row in (widget.get("properties") or {}).get("metrics", [])
        if isinstance(row[0], str)
    }


def test_custom_metrics_use_the_functions_namespace_and_only_the_service_dimension():
    # Powertools EMF: namespace from POWERTOOLS_METRICS_NAMESPACE, one dimension `service`
    namespace, service = powertools_env()
    custom = [m for m in named_metrics() if not m.namespace.startswith("AWS/")]
    assert len(custom) >= 10
    assert {m.namespace for m in custom} == {namespace}
    assert {m.dimensions for m in custom} == {(("service", service),)}


@pytest.mark.parametrize(
    ("namespace", "metric"),
    [
        ("AWS/ApiGateway", "Count"),
        ("AWS/ApiGateway", "4xx"),
        ("AWS/ApiGateway", "5xx"),
        ("AWS/ApiGateway", "Latency"),
        ("MessengerWebhook", "EventsStored"),
        ("MessengerWebhook", "DuplicateEvents"),
        ("MessengerWebhook", "RepliesSent"),
        ("MessengerWebhook", "ReplyFailedPermanent"),
        ("MessengerWebhook", "ReplyFailedTransient"),
        ("MessengerWebhook", "ReplyAmbiguous"),
        ("MessengerWebhook", "ProviderLatency"),
        ("MessengerWebhook", "ReplyLatency"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    ],
)
def test_dashboard_shows(namespace, metric):
    assert (namespace, metric) in dashboard_metrics()


def test_aws_metrics_point_at_this_stacks_resources():
    aws = {(m.namespace, m.name): dict(m.dimensions) for m in named_metrics() if m.namespace.startswith("AWS/")}
    assert aws[("AWS/ApiGateway", "5xx")] == {"ApiId": "<HttpApi>"}
    assert aws[("AWS/Lambda", "IteratorAge")] == {"FunctionName": "<ReplyFunction>"}
    assert aws[("AWS/SQS", "ApproximateNumberOfMessagesVisible")] == {"QueueName": "<ReplyFailureQueue.QueueName>"}
    everything = resources()
    for dims in aws.values():
        for value in dims.values():
            assert value.strip("<>").split(".")[0] in everything


def test_every_widget_reference_is_a_resource_of_the_template():
    text = resources()[DASHBOARD]["Properties"]["DashboardBody"]["Fn::Sub"]

    refs = {ref.split(".")[0] for ref in re.findall(r"\$\{([^}]+)\}", text) if not ref.startswith("AWS::")}
    assert refs and refs <= set(resources())
    alarm_widget = next(w for w in dashboard_widgets(DASHBOARD) if w["type"] == "alarm")
    shown = {ref.strip("<>").removesuffix(".Arn") for ref in alarm_widget["properties"]["alarms"]}
    alarms = {lid for lid, r in resources().items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert shown == alarms


def alarm(logical_id: str) -> dict[str, Any]:
    return resources()[logical_id]["Properties"]


@pytest.mark.parametrize("logical_id", USER_ALARMS)
def test_user_facing_alarms_carry_a_one_line_runbook_and_notify(logical_id):
    props = alarm(logical_id)
    description = props["AlarmDescription"]
    assert "\n" not in description and len(description) <= 1024  # CloudWatch's limit
    assert "Look:" in description and "Do:" in description
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}] and props["TreatMissingData"] == "notBreaching"


def test_permanent_failures_alarm_on_a_rate_with_a_minimum_volume():
    props = alarm("ReplyPermanentFailureRateAlarm")
    expression = next(q["Expression"] for q in props["Metrics"] if q.get("ReturnData"))
    names = {q["MetricStat"]["Metric"]["MetricName"] for q in props["Metrics"] if "MetricStat" in q}
    assert names == {"ReplyFailedPermanent", "RepliesSent"}
    assert ">= 10" in expression and "100 *" in expression and props["Threshold"] == 5


def test_any_ambiguous_send_alarms():
    props = alarm("ReplyAmbiguousAlarm")
    assert (props["MetricName"], props["Statistic"], props["Threshold"], props["ComparisonOperator"]) == (
        "ReplyAmbiguous",
        "Sum",
        0,
        "GreaterThanThreshold",
    )


def test_webhook_5xx_alarm_leaves_out_the_deliberate_503_for_unsigned_callbacks():
    # The smoke check sends one unsigned callback on purpose: neither this alarm nor the unsigned one may fire
    props = alarm("Webhook5xxAlarm")
    expression = next(q["Expression"] for q in props["Metrics"] if q.get("ReturnData"))
    assert "errors" in expression and "- FILL(unsigned, 0)" in expression
    assert alarm("UnsignedCallbacksAlarm")["Threshold"] > 1
