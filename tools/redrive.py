"""Re-drive reply records that the event source mapping gave up on (the on-failure SQS queue).

    python -m tools.redrive --queue-url URL [--dry-run] [--max-messages N]

Each queue message is Lambda's on-failure invocation record for a DynamoDB stream batch
(`DDBStreamBatchInfo`: shardId, startSequenceNumber, endSequenceNumber, streamArn, ...). For each one we
read those records back from the stream (GetShardIterator AT_SEQUENCE_NUMBER, GetRecords up to the end
sequence number), run them through the same processor and pipeline as the reply Lambda, and delete the
queue message only if every record succeeded. Reply claims make this idempotent: records already
answered (or settled as failed/ambiguous) send nothing. Stream records live 24 h: older batches cannot
be read back and are reported as expired (see docs/replying.md for the manual route).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from devkit.lambda_code import add_layers_to_path
from devkit.streams import lambda_record

ProcessFn = Callable[[list[dict[str, Any]]], dict[str, Any]]


@dataclass
class Summary:
    messages: int = 0
    redriven: int = 0
    deleted: int = 0
    kept: int = 0
    expired: int = 0
    records: int = 0
    failed_records: int = 0
    details: list[dict[str, Any]] = field(default_factory=list)


def batch_info(body: str) -> dict[str, Any] | None:
    try:
        info = json.loads(body).get("DDBStreamBatchInfo")
    except (ValueError, AttributeError):
        return None
    required = ("shardId", "startSequenceNumber", "endSequenceNumber", "streamArn")
    return info if isinstance(info, dict) and all(info.get(k) for k in required) else None


def fetch_records(streams: Any, info: dict[str, Any], region: str = "us-east-1") -> list[dict[str, Any]]:
    """The stream records of one failed batch, in the Lambda event shape. Empty if trimmed away."""
    start, end = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
    try:
        iterator = streams.get_shard_iterator(
            StreamArn=info["streamArn"],
            ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("TrimmedDataAccessException", "ResourceNotFoundException"):
            return []
        raise
    records: list[dict[str, Any]] = []
    while iterator:
        response = streams.get_records(ShardIterator=iterator, Limit=1000)
        batch = response.get("Records", [])
        for record in batch:
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence > end:
                return records
            if sequence >= start:
                records.append(lambda_record(record, info["streamArn"], region))
        if not batch:
            break
        iterator = response.get("NextShardIterator")
    return records


def redrive(
    sqs: Any,
    streams: Any,
    queue_url: str,
    process: ProcessFn,
    *,
    dry_run: bool = False,
    max_messages: int | None = None,
    out: Any = None,
) -> Summary:
    out = out or sys.stdout
    summary = Summary()
    seen: set[str] = set()
    while max_messages is None or summary.messages < max_messages:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=120
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        for again in (m for m in messages if m["MessageId"] in seen):  # kept earlier in this run: leave visible
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0)
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            summary.messages += 1
            _one(sqs, streams, queue_url, message, process, dry_run, summary, out)
    print(json.dumps({k: v for k, v in summary.__dict__.items() if k != "details"}), file=out)
    return summary


def _one(
    sqs: Any,
    streams: Any,
    queue_url: str,
    message: dict[str, Any],
    process: ProcessFn,
    dry_run: bool,
    summary: Summary,
    out: Any,
) -> None:
    info = batch_info(message.get("Body", ""))
    detail: dict[str, Any] = {"message_id": message["MessageId"]}
    keep = True
    if info is None:
        detail["result"] = "not an on-failure record for a DynamoDB stream batch"
    else:
        records = fetch_records(streams, info)
        detail.update(
            shard=info["shardId"],
            start=info["startSequenceNumber"],
            end=info["endSequenceNumber"],
            records=len(records),
        )
        if not records:
            summary.expired += 1
            detail["result"] = "records no longer in the stream (older than 24 h?)"
        elif dry_run:
            detail["result"] = "dry run: would re-drive"
        else:
            response = process(records)
            failures = response.get("batchItemFailures", [])
            summary.redriven += 1
            summary.records += len(records)
            summary.failed_records += len(failures)
            keep = bool(failures)
            detail["result"] = f"{len(failures)} record(s) still failing" if failures else "all records succeeded"
    if keep:
        summary.kept += 1
        # Visible again at once for the next run (or an operator), not after the visibility timeout.
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    else:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        summary.deleted += 1
    summary.details.append(detail)
    print(json.dumps(detail), file=out)


def pipeline_process(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The reply Lambda's processing, in this process (environment as for the function)."""
    from aws_lambda_powertools.utilities.batch import process_partial_response

    from messenger.reply.batch import ConversationOrderedProcessor
    from messenger.reply.wiring import conversation_handler, current_pipeline

    # No metrics flush here: this runs on an operator's machine, not in Lambda (its logs tell the story).
    processor = ConversationOrderedProcessor(prepare=current_pipeline, finish=None)
    return process_partial_response(
        event={"Records": records}, record_handler=conversation_handler, processor=processor
    )


def streams_client() -> Any:
    # DynamoDB Local serves streams on its own endpoint: reuse AWS_ENDPOINT_URL_DYNAMODB when no streams one is set.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODBSTREAMS") or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    return boto3.client("dynamodbstreams", endpoint_url=endpoint) if endpoint else boto3.client("dynamodbstreams")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.redrive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue-url", required=True, help="URL of the reply function's on-failure SQS queue")
    parser.add_argument("--dry-run", action="store_true", help="read and report, send nothing, delete nothing")
    parser.add_argument("--max-messages", type=int, default=None, help="stop after this many queue messages")
    args = parser.parse_args(argv)
    summary = redrive(
        boto3.client("sqs"),
        streams_client(),
        args.queue_url,
        pipeline_process,
        dry_run=args.dry_run,
        max_messages=args.max_messages,
    )
    return 1 if summary.kept and not args.dry_run else 0


if __name__ == "__main__":
    add_layers_to_path()
    raise SystemExit(main())
