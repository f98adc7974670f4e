"""tools.redrive against DynamoDB Local's stream and moto's SQS, with the providers mocked by `responses`."""

from __future__ import annotations

import io
import json
import time
import uuid

import pytest

from devkit.local_aws import client
from devkit.streams import StreamReader
from tests.integration.test_reply_pipeline import USER_A, FakeProviders, ingest_meta, providers  # noqa: F401
from tools import redrive as tool

pytestmark = pytest.mark.integration


@pytest.fixture
def sqs(moto_endpoint):
    return client("sqs", moto_endpoint)


@pytest.fixture
def queue_url(sqs):
    url = sqs.create_queue(QueueName=f"reply-failures-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def streams(dynamodb_endpoint):
    return client("dynamodbstreams", dynamodb_endpoint)


def failed_batch(stack_env, streams, sqs, queue_url, lambda_context, mid: str) -> None:
    """Store a message and put the on-failure record Lambda would send for its batch."""
    ingest_meta(
        lambda_context,
        {
            "sender": {"id": USER_A},
            "recipient": {"id": "107083064136738"},
            "timestamp": int(time.time() * 1000),
            "message": {"mid": mid, "text": "hello"},
        },
    )
    raw = []
    reader = StreamReader(streams, stack_env.stream_arn)
    while batch := reader.poll():
        raw.extend(batch)
    first, last = raw[0], raw[-1]
    body = {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "condition": "RetryAttemptsExhausted",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:reply",
            "approximateInvokeCount": 6,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": ""},
        "version": "1.0",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": first["_shard"],
            "startSequenceNumber": first["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": last["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": "2026-01-01T00:00:00Z",
            "approximateArrivalOfLastRecord": "2026-01-01T00:00:00Z",
            "batchSize": len(raw),
            "streamArn": stack_env.stream_arn,
        },
    }
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))


def visible(sqs, queue_url) -> int:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return len(messages.get("Messages", []))


def test_redrive_sends_once_and_deletes_the_message(
    providers,  # noqa: F811 - the fixture imported from test_reply_pipeline
    stack_env,
    streams,
    sqs,
    queue_url,
    lambda_context,
):
    # Given a batch the event source mapping gave up on
    failed_batch(stack_env, streams, sqs, queue_url, lambda_context, "m.dlq.1")
    # When it is re-driven twice
    first = tool.redrive(sqs, streams, queue_url, tool.pipeline_process, out=io.StringIO())
    failed_batch_again = tool.redrive(sqs, streams, queue_url, tool.pipeline_process, out=io.StringIO())
    # Then the message was answered once and the queue message deleted
    assert first.deleted == 1 and first.kept == 0 and first.records == 1
    assert failed_batch_again.messages == 0
    assert len(providers.meta_calls) == 1
    assert stack_env.find("REPLY#m.dlq.1")["state"] == "sent"
    assert visible(sqs, queue_url) == 0


def test_redrive_keeps_the_message_while_records_fail(
    providers,  # noqa: F811 - the fixture imported from test_reply_pipeline
    stack_env,
    streams,
    sqs,
    queue_url,
    lambda_context,
):
    # Given the provider is still down
    failed_batch(stack_env, streams, sqs, queue_url, lambda_context, "m.dlq.2")
    providers.meta_faults[USER_A] = (503, {"error": {"code": 2, "message": "down"}})
    # When it is re-driven
    summary = tool.redrive(sqs, streams, queue_url, tool.pipeline_process, out=io.StringIO())
    # Then the queue message stays for a later run
    assert summary.kept == 1 and summary.deleted == 0 and summary.failed_records == 1
    assert visible(sqs, queue_url) == 1
    # When the provider recovers, Then the next run answers it and empties the queue
    providers.meta_faults.clear()
    again = tool.redrive(sqs, streams, queue_url, tool.pipeline_process, out=io.StringIO())
    assert again.deleted == 1 and visible(sqs, queue_url) == 0
    assert stack_env.find("REPLY#m.dlq.2")["state"] == "sent"


def test_dry_run_sends_and_deletes_nothing(
    providers,  # noqa: F811 - the fixture imported from test_reply_pipeline
    stack_env,
    streams,
    sqs,
    queue_url,
    lambda_context,
    monkeypatch,
    capsys,
):
    # Given a failed batch
    failed_batch(stack_env, streams, sqs, queue_url, lambda_context, "m.dlq.3")
    monkeypatch.setattr(tool.boto3, "client", lambda name, **kw: sqs if name == "sqs" else streams)
    # When the CLI runs with --dry-run
    code = tool.main(["--queue-url", queue_url, "--dry-run"])
    # Then nothing was sent or deleted, and the report names the batch
    assert code == 0 and providers.meta_calls == []
    assert visible(sqs, queue_url) == 1
    assert "dry run" in capsys.readouterr().out
