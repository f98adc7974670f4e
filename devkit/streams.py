"""Read a DynamoDB (Local) stream and hand back records in the exact shape Lambda delivers them.

The reader tracks one position per shard (`positions`: the consumer's checkpoints), so a consumer that
restarts with the saved positions resumes after the last record it finished, never losing or repeating one.
Shared by the local stack's stream poller and the ops tool tools/redrive.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.exceptions import ClientError


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A GetRecords record -> the record of a Lambda DynamoDB stream event."""
    image = dict(record["dynamodb"])
    created = image.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        image["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": image,
        "eventSourceARN": stream_arn,
    }


class StreamReader:
    def __init__(
        self,
        streams_client: Any,
        stream_arn: str,
        starting_position: str = "TRIM_HORIZON",
        positions: dict[str, str] | None = None,
        region: str = "us-east-1",
    ) -> None:
        self.client = streams_client
        self.stream_arn = stream_arn
        self.starting_position = starting_position
        self.region = region
        # shard id -> sequence number of the last record the consumer finished (checkpointed)
        self.positions: dict[str, str] = dict(positions or {})
        self._iterators: dict[str, str | None] = {}
        self._closed: set[str] = set()

    def shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return _parents_first(shards)
            kwargs["ExclusiveStartShardId"] = last

    def poll(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Records after each shard's current read position, in order within each shard."""
        records: list[dict[str, Any]] = []
        for shard in self.shards():
            shard_id = shard["ShardId"]
            if shard_id in self._closed:
                continue
            iterator = self._iterator(shard_id)
            if iterator is None:
                continue
            response = self.client.get_records(ShardIterator=iterator, Limit=min(limit, 1000))
            batch = response.get("Records", [])
            records.extend({**lambda_record(r, self.stream_arn, self.region), "_shard": shard_id} for r in batch)
            next_iterator = response.get("NextShardIterator")
            if next_iterator is None:
                self._closed.add(shard_id)
            self._iterators[shard_id] = next_iterator
        return records

    def rewind(self) -> None:
        """Forget read-ahead: the next poll starts again right after the checkpoints."""
        self._iterators.clear()
        self._closed.clear()

    def _iterator(self, shard_id: str) -> str | None:
        if shard_id in self._iterators:
            return self._iterators[shard_id]
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if shard_id in self.positions:
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=self.positions[shard_id])
        else:
            kwargs["ShardIteratorType"] = self.starting_position
        try:
            iterator = self.client.get_shard_iterator(**kwargs)["ShardIterator"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TrimmedDataAccessException":
                kwargs.pop("SequenceNumber", None)
                kwargs["ShardIteratorType"] = "TRIM_HORIZON"
                iterator = self.client.get_shard_iterator(**kwargs)["ShardIterator"]
            else:
                raise
        self._iterators[shard_id] = iterator
        return iterator


def strip_internal(record: dict[str, Any]) -> dict[str, Any]:
    """The record as Lambda sees it (without the reader's shard bookkeeping)."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _parents_first(shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {s["ShardId"]: s for s in shards}
    ordered: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(shard: dict[str, Any]) -> None:
        if shard["ShardId"] in seen:
            return
        seen.add(shard["ShardId"])
        parent = shard.get("ParentShardId")
        if parent in by_id:
            visit(by_id[parent])
        ordered.append(shard)

    for shard in shards:
        visit(shard)
    return ordered
