"""The events table: the only module that talks to DynamoDB.

Keys (see docs/design.md): one item per key `pk`; a GSI `by_conversation` orders a conversation's
items by time. Inbound events are written with a conditional put on `pk`, so a redelivery writes
nothing; outbound messages are upserted with a status that never moves backwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from messenger.errors import StorageError
from messenger.models import STATUS_RANK, Event, RecordType, conversation_id

CONVERSATION_INDEX = "by_conversation"
_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5, tcp_keepalive=True
)


def event_key(provider: str, event_id: str) -> str:
    return f"EVT#{provider}#{event_id}"


def message_key(provider: str, message_id: str) -> str:
    return f"MSG#{provider}#{message_id}"


def reply_key(provider: str, inbound_event_id: str) -> str:
    return f"REPLY#{provider}#{inbound_event_id}"


def conversation_sort(timestamp_ms: int, pk: str) -> str:
    return f"{timestamp_ms:013d}#{pk}"


def to_attribute(value: Any) -> dict[str, Any]:
    """Python value -> DynamoDB attribute value (low-level form, no floats: numbers are ints)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {k: to_attribute(v) for k, v in value.items() if v is not None}}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__}")


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: to_attribute(v) for k, v in values.items() if v is not None and v != [] and v != ""}


def from_attribute(value: dict[str, Any]) -> Any:
    (kind, inner), = value.items()
    if kind == "S" or kind == "BOOL":
        return inner
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else float(inner)
    if kind == "M":
        return {k: from_attribute(v) for k, v in inner.items()}
    if kind == "L":
        return [from_attribute(v) for v in inner]
    if kind == "NULL":
        return None
    if kind == "SS":
        return sorted(inner)
    raise TypeError(f"unexpected attribute type {kind}")


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_attribute(v) for k, v in item.items()}


def event_item(event: Event, *, now_s: int, retention_s: int) -> dict[str, Any]:
    """The stored form of an event: the normalised fields, plus the provider's JSON as a string."""
    pk = event_key(event.provider, event.event_id)
    values: dict[str, Any] = {
        "pk": pk,
        "record_type": event.record_type.value,
        "provider": event.provider.value,
        "kind": event.kind.value,
        "event_id": event.event_id,
        "page_id": event.page_id,
        "user_id": event.user_id,
        "conversation_id": event.conversation_id,
        "conversation_sort": conversation_sort(event.timestamp_ms, pk),
        "timestamp_ms": event.timestamp_ms,
        "received_at": now_s,
        "expires_at": now_s + retention_s,
        "text": event.text,
        "attachments": [{k: v for k, v in asdict(a).items() if v is not None} for a in event.attachments],
        "quick_reply_payload": event.quick_reply_payload,
        "postback_title": event.postback_title,
        "postback_payload": event.postback_payload,
        "reply_to_mid": event.reply_to_mid,
        "reaction": event.reaction,
        "watermark_ms": event.watermark_ms,
        "mids": event.mids,
        "status": event.status,
        "error": event.error,
        "app_id": event.app_id,
        "metadata": event.metadata,
        "message_type": event.message_type,
        "payload_version": event.payload_version,
        "standby": event.standby or None,
        "raw": json.dumps(event.raw, separators=(",", ":"), ensure_ascii=False),
    }
    return to_item(values)


class EventStore:
    def __init__(self, table_name: str, client: Any = None, retention_days: int = 90) -> None:
        self.table_name = table_name
        self.client = client or boto3.client("dynamodb", config=_CLIENT_CONFIG)
        self.retention_s = retention_days * 86400

    # -- inbound events -------------------------------------------------------------------------

    def put_event(self, event: Event, now_s: int | None = None) -> bool:
        """Store the event once. True if written now, False if it was already there (a redelivery)."""
        item = event_item(event, now_s=now_s or int(time.time()), retention_s=self.retention_s)
        return self.put_new(item)

    def put_new(self, item: dict[str, Any]) -> bool:
        try:
            self.client.put_item(
                TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise StorageError(f"PutItem failed: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"PutItem failed: {type(exc).__name__}") from exc
        return True

    # -- outbound message statuses --------------------------------------------------------------

    def apply_status(
        self,
        provider: str,
        message_id: str,
        status: str,
        *,
        at_ms: int,
        error: dict[str, Any] | None = None,
        now_s: int | None = None,
    ) -> bool:
        """Move an outbound message to `status` unless it already is there or further. True if moved."""
        rank = STATUS_RANK.get(status)
        if rank is None:
            return False
        now = now_s or int(time.time())
        names = {"#status": "status"}
        values: dict[str, Any] = {
            ":status": {"S": status},
            ":rank": {"N": str(rank)},
            ":at": {"N": str(at_ms)},
            ":exp": {"N": str(now + self.retention_s)},
        }
        update = "SET #status = :status, status_rank = :rank, status_at_ms = :at, "
        update += "expires_at = if_not_exists(expires_at, :exp)"
        if error:
            update += ", status_error = :error"
            values[":error"] = to_attribute(error)
        return self.update(
            message_key(provider, message_id),
            update,
            "attribute_not_exists(status_rank) OR status_rank < :rank",
            names,
            values,
        )

    def outbound_before(
        self, provider: str, page_id: str, user_id: str, watermark_ms: int, below: str = "read"
    ) -> list[str]:
        """Ids of the conversation's outbound messages sent at or before `watermark_ms`, not yet at `below`."""
        conversation = conversation_id(provider, page_id, user_id)
        ids: list[str] = []
        for item in self._query_conversation(conversation, upper=f"{watermark_ms:013d}#~", limit=100):
            if item.get("record_type") == RecordType.OUTBOUND and item.get("status_rank", 0) < STATUS_RANK[below]:
                ids.append(item["message_id"])
        return ids

    def conversation_items(self, provider: str, page_id: str, user_id: str) -> list[dict[str, Any]]:
        """A conversation's stored items, oldest first (bounded to the last 500)."""
        items = list(self._query_conversation(conversation_id(provider, page_id, user_id), limit=500))
        items.reverse()
        return items

    def get(self, pk: str) -> dict[str, Any] | None:
        try:
            response = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"GetItem failed: {type(exc).__name__}") from exc
        item = response.get("Item")
        return from_item(item) if item else None

    # -- data deletion ---------------------------------------------------------------------------

    def delete_conversation(self, conversation: str) -> int:
        """Delete every item of one conversation (the GSI finds them); returns how many were deleted."""
        deleted = 0
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": CONVERSATION_INDEX,
            "KeyConditionExpression": "conversation_id = :c",
            "ExpressionAttributeValues": {":c": {"S": conversation}},
            "ProjectionExpression": "pk, record_type, provider, event_id",
        }
        try:
            while True:
                page = self.client.query(**kwargs)
                for item in page.get("Items", []):
                    keys = [item["pk"]["S"]]
                    if item.get("record_type", {}).get("S") == RecordType.INBOUND:
                        keys.append(reply_key(item["provider"]["S"], item["event_id"]["S"]))
                    for key in keys:
                        self.client.delete_item(TableName=self.table_name, Key={"pk": {"S": key}})
                    deleted += 1
                if "LastEvaluatedKey" not in page:
                    return deleted
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"deleting a conversation failed: {type(exc).__name__}") from exc

    # -- helpers --------------------------------------------------------------------------------

    def update(
        self, pk: str, update: str, condition: str | None, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """A conditional UpdateItem. False if the condition failed (someone got there first)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": pk}},
            "UpdateExpression": update,
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            self.client.update_item(**kwargs)
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise StorageError(f"UpdateItem failed: {_error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"UpdateItem failed: {type(exc).__name__}") from exc
        return True

    def _query_conversation(self, conversation: str, upper: str | None = None, limit: int = 100) -> Iterator[dict]:
        condition = "conversation_id = :c"
        values: dict[str, Any] = {":c": {"S": conversation}}
        if upper is not None:
            condition += " AND conversation_sort <= :u"
            values[":u"] = {"S": upper}
        try:
            response = self.client.query(
                TableName=self.table_name,
                IndexName=CONVERSATION_INDEX,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ScanIndexForward=False,
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"Query failed: {type(exc).__name__}") from exc
        yield from (from_item(item) for item in response.get("Items", []))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))



def dynamodb_client(max_pool_connections: int = 10) -> Any:
    """A DynamoDB client with this module's timeouts and retries, sized for `max_pool_connections` threads."""
    return boto3.client("dynamodb", config=_CLIENT_CONFIG.merge(Config(max_pool_connections=max_pool_connections)))
