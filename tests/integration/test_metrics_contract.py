"""Every custom metric the dashboard and the alarms name is one the handlers really print.

Both handlers are driven through the paths that emit each metric (webhook on DynamoDB Local + moto; reply
function fed by the table's real stream, providers answered by `responses`), and the Embedded Metric
Format blobs they print are parsed: namespace, metric name and dimension values must match the template's.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import responses

from devkit.apigw_events import http_event
from devkit.local_aws import client
from devkit.streams import StreamReader, strip_internal
from local.template import MetricRef, load_template, named_metrics, resources
from messenger.config import get_settings
from messenger.reply.ledger import MAX_ATTEMPTS
from messenger.reply.wiring import current_pipeline, pipeline_for
from messenger.sending import RetryPolicy
from tests.helpers import dumps, load_handler, meta_body, meta_message, meta_post, vonage_post

pytestmark = pytest.mark.integration

GRAPH = "https://graph.test"
OK, PERMANENT, AMBIGUOUS, TRANSIENT = "2000000000000001", "2000000000000002", "2000000000000003", "2000000000000004"


def emitted(text: str) -> set[MetricRef]:
    """The metrics of every EMF blob in `text` (one JSON document a line, as Powertools prints them)."""
    found: set[MetricRef] = set()
    for line in text.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                pairs = tuple(sorted((name, str(blob[name])) for name in dimension_set))
                found |= {MetricRef(directive["Namespace"], m["Name"], pairs) for m in directive["Metrics"]}
    return found


def graph(request: Any) -> tuple[int, dict, str]:
    recipient = json.loads(request.body)["recipient"]["id"]
    if recipient == PERMANENT:
        return 400, {}, json.dumps({"error": {"code": 100, "message": "Invalid parameter"}})
    if recipient == AMBIGUOUS:
        return 200, {}, json.dumps({"recipient_id": recipient})  # success without a message_id
    if recipient == TRANSIENT:
        return 503, {}, json.dumps({"error": {"code": 2, "message": "Service temporarily unavailable"}})
    return 200, {}, json.dumps({"recipient_id": recipient, "message_id": f"m_{recipient}"})


def drive_webhook(context: Any) -> None:
    webhook = load_handler("webhook")
    now = int(time.time() * 1000)
    events = [
        meta_message(f"m.metrics.{user}", "hello", sender=user, ts=now)
        for user in (OK, PERMANENT, AMBIGUOUS, TRANSIENT)
    ]
    body = dumps(meta_body(*events))
    assert webhook.lambda_handler(meta_post(body), context)["statusCode"] == 200  # EventsStored
    assert webhook.lambda_handler(meta_post(body), context)["statusCode"] == 200  # DuplicateEvents
    assert webhook.lambda_handler(meta_post(body, signature="sha256=" + "0" * 64), context)["statusCode"] == 401
    assert webhook.lambda_handler(meta_post(b"not json"), context)["statusCode"] == 400
    verify = http_event(
        "GET", "/meta/webhook", query={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}
    )
    assert webhook.lambda_handler(verify, context)["statusCode"] == 403
    unsigned = vonage_post("/vonage/inbound", b"{}", authorization=None)
    assert webhook.lambda_handler(unsigned, context)["statusCode"] == 503  # UnsignedCallbacks


def test_the_handlers_emit_every_custom_metric_the_template_names(
    stack_env, dynamodb_endpoint, monkeypatch, lambda_context, capsys
):
    # Given the functions' environment, a Graph API that answers per recipient, and the table's stream
    monkeypatch.setenv("GRAPH_API_BASE", GRAPH)
    get_settings.cache_clear()
    pipeline_for.cache_clear()
    pipeline = current_pipeline()
    pipeline.retry = RetryPolicy(max_attempts=1, base_delay_s=0.001, max_delay_s=0.01, reserve_ms=0)
    pipeline.ledger.confirm_window_ms = 100  # the unclear send is given up as ambiguous after this (30 s live)
    reader = StreamReader(client("dynamodbstreams", dynamodb_endpoint), stack_env.stream_arn)
    capsys.readouterr()
    try:
        # When the webhook is driven through its accept and reject paths
        drive_webhook(lambda_context)
        records: list[dict[str, Any]] = []
        while batch := reader.poll():
            records.extend(strip_internal(r) for r in batch)
        # And the reply function answers the four messages (sent, permanent, ambiguous, transient)
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mock.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"), graph)
            reply = load_handler("reply")
            result = reply.lambda_handler({"Records": records}, lambda_context)
            assert len(result["batchItemFailures"]) == 1
            # And the transient one is delivered again until it is given up (ReplyGivenUp)
            failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
            again = [r for r in records if r["dynamodb"]["SequenceNumber"] in failed]
            for _ in range(MAX_ATTEMPTS - 1):
                result = reply.lambda_handler({"Records": again}, lambda_context)
        assert result["batchItemFailures"] == []
    finally:
        pipeline_for.cache_clear()
    printed = emitted(capsys.readouterr().out)
    # Then every custom metric of the dashboard and alarms was printed with the same namespace and dimensions
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    named = {m for m in named_metrics() if m.namespace == variables["POWERTOOLS_METRICS_NAMESPACE"]}
    assert named, "the template names no custom metric"
    assert named - printed == set()
    assert {m.namespace for m in printed} == {variables["POWERTOOLS_METRICS_NAMESPACE"]}


def alarmed_metrics() -> set[str]:
    """The names of the metrics the template's alarms watch (plain or inside metric math)."""
    names = set()
    for resource in resources().values():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        names.add(props.get("MetricName"))
        names |= {q["MetricStat"]["Metric"]["MetricName"] for q in props.get("Metrics", []) if "MetricStat" in q}
    return names - {None}


def test_a_reply_given_up_after_its_attempts_is_counted_and_alarmed(
    stack_env, dynamodb_endpoint, monkeypatch, lambda_context, capsys
):
    # Given a message whose sends always fail transiently (503)
    monkeypatch.setenv("GRAPH_API_BASE", GRAPH)
    get_settings.cache_clear()
    pipeline_for.cache_clear()
    current_pipeline().retry = RetryPolicy(max_attempts=1, base_delay_s=0.001, max_delay_s=0.01, reserve_ms=0)
    reader = StreamReader(client("dynamodbstreams", dynamodb_endpoint), stack_env.stream_arn)
    body = dumps(meta_body(meta_message("m.metrics.gu", "hello", sender=TRANSIENT, ts=int(time.time() * 1000))))
    assert load_handler("webhook").lambda_handler(meta_post(body), lambda_context)["statusCode"] == 200
    records = [strip_internal(r) for r in reader.poll()]
    capsys.readouterr()
    try:
        # When Lambda delivers its record again after each failure
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mock.add_callback(responses.POST, re.compile(rf"{re.escape(GRAPH)}/v25\.0/\d+/messages"), graph)
            results = [
                load_handler("reply").lambda_handler({"Records": records}, lambda_context) for _ in range(MAX_ATTEMPTS)
            ]
            sends = len(mock.calls)
    finally:
        pipeline_for.cache_clear()
    # Then it is retried MAX_ATTEMPTS - 1 times, then given up as failed (the conversation goes on)
    assert [len(r["batchItemFailures"]) for r in results] == [1] * (MAX_ATTEMPTS - 1) + [0]
    assert sends == MAX_ATTEMPTS
    claim = stack_env.find("REPLY#m.metrics.gu")
    assert (claim["state"], claim["given_up"], claim["attempts"]) == ("failed", "retries_exhausted", MAX_ATTEMPTS)
    # And that is counted in the service's namespace, and an alarm watches it (a given-up reply is not silent)
    printed = {m.name for m in emitted(capsys.readouterr().out)}
    assert "ReplyGivenUp" in printed
    assert "ReplyGivenUp" in alarmed_metrics()
