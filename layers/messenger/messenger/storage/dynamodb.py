"""`DynamoStore`: the storage port on the events table. The only module that writes a DynamoDB expression.

Cost of an answered single-part message (docs/design.md, "Ordering"): take the turn (UpdateItem, which
also returns the pause and the cursor), pending messages (Query), claim (PutItem), outbound message
(UpdateItem), settle (UpdateItem), end the turn (UpdateItem) = 5 writes and 1 read. A redelivered record
whose message is answered costs the turn and an empty query.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from messenger.aws import aws_client
from messenger.errors import StorageError, StorageRejectedError, TurnLostError
from messenger.events import STATUS_RANK, Event, RecordType
from messenger.storage import codec
from messenger.storage.codec import Key, from_item, key_attributes, to_attribute, to_item
from messenger.storage.port import CachedProfile, NewClaim, OutboundMessage, ReplyState, Turn, UnreadMessage

_BATCH_WRITE_LIMIT = 25


def dynamodb_client(max_pool_connections: int = 10) -> Any:
    """A DynamoDB client with this module's timeouts and retries, sized for `max_pool_connections` threads."""
    return aws_client("dynamodb", max_pool_connections=max_pool_connections)


class _Update:
    """Builds one UpdateItem: SET/ADD/REMOVE clauses and a condition, with placeholders for every name and value."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.removes: list[str] = []
        self.condition: str | None = None

    def n(self, attribute: str) -> str:
        for placeholder, name in self.names.items():
            if name == attribute:
                return placeholder
        placeholder = f"#n{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def v(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_attribute(value)
        return placeholder

    def set(self, attribute: str, value: Any) -> _Update:
        self.sets.append(f"{self.n(attribute)} = {self.v(value)}")
        return self

    def set_all(self, values: dict[str, Any]) -> _Update:
        for attribute, value in values.items():
            if value is not None:
                self.set(attribute, value)
        return self

    def set_if_absent(self, attribute: str, value: Any) -> _Update:
        name = self.n(attribute)
        self.sets.append(f"{name} = if_not_exists({name}, {self.v(value)})")
        return self

    def remove(self, attribute: str) -> _Update:
        self.removes.append(self.n(attribute))
        return self

    def add_to_set(self, attribute: str, member: str) -> _Update:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = {"SS": [member]}
        self.adds.append(f"{self.n(attribute)} {placeholder}")
        return self

    def expression(self) -> str:
        parts = []
        if self.sets:
            parts.append("SET " + ", ".join(self.sets))
        if self.adds:
            parts.append("ADD " + ", ".join(self.adds))
        if self.removes:
            parts.append("REMOVE " + ", ".join(self.removes))
        return " ".join(parts)


class DynamoStore:
    """The storage port on one DynamoDB table (keys and codec: storage/codec.py)."""

    def __init__(self, table_name: str, client: Any = None, retention_days: int = 90) -> None:
        self.table_name = table_name
        self.client = client or aws_client("dynamodb")
        self.retention_s = retention_days * 86400

    def _expires(self, now_s: int | None = None) -> int:
        return (now_s or int(time.time())) + self.retention_s

    # -- provider events ----------------------------------------------------------------------------

    def store_event(self, event: Event, now_s: int | None = None) -> bool:
        # Bounded before the write (codec.event_forms), so an oversized event costs no failed round trip;
        # the safe form is tried only when DynamoDB still refuses the first.
        rejected: StorageRejectedError | None = None
        for item in codec.event_forms(event, now_s=now_s or int(time.time()), retention_s=self.retention_s):
            try:
                return bool(self._put_new(item))
            except StorageRejectedError as exc:
                rejected = exc
        raise StorageRejectedError("the event cannot be stored in any form") from rejected

    def apply_status(
        self, conversation: str, message_id: str, status: str, *, at_ms: int, error: dict[str, Any] | None = None
    ) -> bool:
        rank = STATUS_RANK.get(status)
        if rank is None:
            return False
        update = _Update().set_all(
            {
                "record_type": RecordType.OUTBOUND.value,
                "message_id": message_id,
                "status": status,
                "status_rank": rank,
                "status_at_ms": at_ms,
                "status_error": error or None,
            }
        )
        update.set_if_absent("expires_at", self._expires())
        update.condition = (
            f"attribute_not_exists({update.n('status_rank')}) OR {update.n('status_rank')} < {update.v(rank)}"
        )
        return bool(self._update(codec.message_key(conversation, message_id), update))

    def outbound_before(self, conversation: str, watermark_ms: int, below: str = "read") -> list[str]:
        state = self._get(codec.state_key(conversation)) or {}
        return codec.unread_between(state, below, watermark_ms)

    def advance_watermark(self, conversation: str, status: str, watermark_ms: int) -> bool:
        update = _Update()
        name = update.n(codec.watermark_attribute(status))
        update.sets.append(f"{name} = {update.v(watermark_ms)}")
        update.set_if_absent("record_type", RecordType.STATE.value)
        update.set_if_absent("expires_at", self._expires())
        update.condition = f"attribute_not_exists({name}) OR {name} < {update.v(watermark_ms)}"
        return bool(self._update(codec.state_key(conversation), update))

    def reconcile_echo(self, conversation: str, inbound_event_id: str, echo_mid: str, at_ms: int | None = None) -> bool:
        key = codec.reply_key(conversation, inbound_event_id)
        noted = _Update().add_to_set("echo_mids", echo_mid)
        if at_ms is not None:
            noted.set_if_absent("echo_at_ms", at_ms)
        noted.condition = f"attribute_exists({noted.n('pk')})"
        if not self._update(key, noted):
            return False
        # Settle a claim whose send is unconfirmed (or was given up as ambiguous), and make the echo's mid one
        # of the message ids of a claim settled by echoes (a later part's echo joins them too), so its
        # statuses are tracked like any reply's.
        settle = _Update().set_all({"state": "sent", "reconciled_by": "echo"})
        ids = settle.n("message_ids")
        settle.sets.append(f"{ids} = list_append(if_not_exists({ids}, {settle.v([])}), {settle.v([echo_mid])})")
        state = settle.n("state")
        settle.condition = (
            f"{state} IN ({', '.join(settle.v(s) for s in codec.CONFIRMABLE)}) OR ({settle.n('reconciled_by')} = "
            f"{settle.v('echo')} AND NOT contains({ids}, {settle.v(echo_mid)}))"
        )
        old = self._update(key, settle, return_old=True)
        return old is not None and old.get("state") in codec.CONFIRMABLE

    # -- conversation state ---------------------------------------------------------------------------

    def set_pause(self, conversation: str, paused_until_ms: int, at_ms: int, reason: str) -> bool:
        update = _Update().set_all(
            {
                "paused_until_ms": paused_until_ms,
                "state_at_ms": at_ms,
                "pause_reason": reason,
                "record_type": RecordType.STATE.value,
                "expires_at": self._expires(),
            }
        )
        at = update.n("state_at_ms")
        update.condition = f"attribute_not_exists({at}) OR {at} <= {update.v(at_ms)}"
        return bool(self._update(codec.state_key(conversation), update))

    def paused_until(self, conversation: str) -> int:
        item = self._get(codec.state_key(conversation))
        return int(item.get("paused_until_ms", 0)) if item else 0

    # -- the reply turn -------------------------------------------------------------------------------------

    def take_turn(self, conversation: str, token: str, *, now_ms: int, until_ms: int) -> Turn | int:
        update = _Update().set_all({codec.TURN_TOKEN: token, codec.TURN_UNTIL: until_ms, "expires_at": self._expires()})
        update.set_if_absent("record_type", RecordType.STATE.value)
        until = update.n(codec.TURN_UNTIL)
        update.condition = f"attribute_not_exists({until}) OR {until} < {update.v(now_ms)}"
        written, values = self._update_returning(codec.state_key(conversation), update)
        if not written:
            return int(values.get(codec.TURN_UNTIL, now_ms))
        return codec.turn_from_state(values)

    def pending_messages(self, conversation: str, after: str) -> list[dict[str, Any]]:
        values = {
            ":pk": {"S": conversation},
            ":from": {"S": after or codec.EVENTS_FIRST},
            ":to": {"S": codec.EVENTS_LAST},
            ":inbound": {"S": RecordType.INBOUND.value},
            ":now": {"N": str(int(time.time()))},
        }
        items = self._query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
            # An expired item may still be read until TTL deletes it (days later): never answer one.
            FilterExpression="record_type = :inbound AND (attribute_not_exists(expires_at) OR expires_at > :now)",
            ExpressionAttributeValues=values,
        )
        return [{**item, "conversation_id": item["pk"]} for item in items if item["sk"] != after]

    def turn_held_until(self, conversation: str) -> int:
        item = self._get(codec.state_key(conversation), consistent=False)
        return int(item.get(codec.TURN_UNTIL, 0)) if item else 0

    def renew_turn(self, conversation: str, token: str, *, until_ms: int) -> None:
        update = _Update().set(codec.TURN_UNTIL, until_ms)
        update.condition = f"{update.n(codec.TURN_TOKEN)} = {update.v(token)}"
        if not self._update(codec.state_key(conversation), update):
            raise TurnLostError("another invocation holds this conversation's turn now")

    def end_turn(
        self, conversation: str, token: str, *, answered_through: str, unread: list[UnreadMessage]
    ) -> dict[str, int]:
        update = _Update()
        if answered_through:
            update.set(codec.ANSWERED_THROUGH, answered_through)
        update.set(codec.UNREAD, [list(message) for message in unread])
        update.remove(codec.TURN_TOKEN).remove(codec.TURN_UNTIL)
        update.condition = f"{update.n(codec.TURN_TOKEN)} = {update.v(token)}"
        written, values = self._update_returning(codec.state_key(conversation), update)
        if not written:
            raise TurnLostError("another invocation holds this conversation's turn now")
        return codec.watermarks(values)

    # -- the reply ledger -------------------------------------------------------------------------------

    def claim_reply(self, claim: NewClaim) -> ReplyState | None:
        pk, sk = codec.reply_key(claim.conversation, claim.inbound_event_id)
        item = to_item({"pk": pk, "sk": sk, **codec.claim_values(claim, self._expires())})
        for _ in range(2):
            existing = self._put_new(item, return_existing=True)
            if existing is None:
                return None
            if existing:
                return ReplyState.from_values(existing)
            # The put failed but returned no item: an older DynamoDB; read it (gone = expired: claim again).
            found = self._get((pk, sk))
            if found is not None:
                return ReplyState.from_values(found)
        raise StorageError("reply claim raced with its own expiry")

    def reclaim_reply(
        self,
        conversation: str,
        inbound_event_id: str,
        *,
        old_state: str,
        old_token: str,
        values: dict[str, Any],
    ) -> bool:
        update = _Update().set_all(values)
        update.condition = (
            f"{update.n('state')} = {update.v(old_state)} AND {update.n('claim_token')} = {update.v(old_token)}"
        )
        return bool(self._update(codec.reply_key(conversation, inbound_event_id), update))

    def settle_reply(self, conversation: str, inbound_event_id: str, token: str, values: dict[str, Any]) -> bool:
        update = _Update().set_all(values)
        update.condition = f"{update.n('claim_token')} = {update.v(token)}"
        return bool(self._update(codec.reply_key(conversation, inbound_event_id), update))

    def reply_state(self, conversation: str, inbound_event_id: str) -> ReplyState | None:
        item = self._get(codec.reply_key(conversation, inbound_event_id))
        return ReplyState.from_values(item) if item else None

    def record_outbound(self, message: OutboundMessage) -> None:
        update = _Update().set_all(codec.outbound_values(message))
        for name, value in codec.outbound_defaults(message, self._expires()).items():
            update.set_if_absent(name, value)
        self._update(codec.message_key(message.conversation, message.message_id), update)

    # -- profiles ---------------------------------------------------------------------------------------------

    def cached_profile(self, conversation: str) -> CachedProfile | None:
        item = self._get(codec.profile_key(conversation), consistent=False)
        if item is None:
            return None
        return CachedProfile(item.get("first_name") or None, int(item.get("profile_expires_at", 0)))

    def cache_profile(self, conversation: str, first_name: str | None, expires_at: int) -> None:
        update = _Update().set_all(
            {"record_type": RecordType.PROFILE.value, "profile_expires_at": expires_at, "expires_at": expires_at}
        )
        if first_name:
            update.set("first_name", first_name)
        else:
            update.remove("first_name")
        self._update(codec.profile_key(conversation), update)

    # -- data deletion ----------------------------------------------------------------------------------------

    def delete_user_data(self, code: str, user_hash: str, conversations: list[str]) -> int:
        now = int(time.time())
        pk, sk = codec.deletion_key(code)
        self._put_new(
            to_item(
                {
                    "pk": pk,
                    "sk": sk,
                    "record_type": RecordType.DELETION.value,
                    "status": "in_progress",
                    "user_hash": user_hash,
                    "requested_at": now,
                    "expires_at": self._expires(now),
                }
            )
        )
        deleted = sum(self._delete_partition(conversation) for conversation in conversations)
        done = _Update().set_all({"status": "completed", "deleted_items": deleted, "completed_at": int(time.time())})
        self._update((pk, sk), done)
        return deleted

    def deletion(self, code: str) -> dict[str, Any] | None:
        return self._get(codec.deletion_key(code))

    def _delete_partition(self, conversation: str) -> int:
        keys = [
            (item["pk"], item["sk"])
            for item in self._query(
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": conversation}},
                ProjectionExpression="pk, sk",
            )
        ]
        for start in range(0, len(keys), _BATCH_WRITE_LIMIT):
            chunk = keys[start : start + _BATCH_WRITE_LIMIT]
            self._batch_write([{"DeleteRequest": {"Key": key_attributes(key)}} for key in chunk])
        return len(keys)

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        pending = {self.table_name: requests}
        for attempt in range(8):
            try:
                response = self.client.batch_write_item(RequestItems=pending)
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(f"BatchWriteItem failed: {type(exc).__name__}") from exc
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise StorageError("BatchWriteItem left items unprocessed")

    # -- reading ------------------------------------------------------------------------------------------------

    def conversation_items(self, conversation: str) -> list[dict[str, Any]]:
        return list(
            self._query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": conversation}})
        )

    def message(self, conversation: str, message_id: str) -> dict[str, Any] | None:
        return self._get(codec.message_key(conversation, message_id))

    # -- the four calls -------------------------------------------------------------------------------------------

    def _put_new(self, item: dict[str, Any], return_existing: bool = False) -> Any:
        """Conditional put. Without `return_existing`: True if written. With it: None if written, else the
        item that was there ({} when DynamoDB did not return it)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if return_existing:
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            self.client.put_item(**kwargs)
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return from_item(exc.response.get("Item") or {}) if return_existing else False
            raise _storage_error("PutItem", exc) from exc
        except BotoCoreError as exc:
            raise _storage_error("PutItem", exc) from exc
        return None if return_existing else True

    def _update(self, key: Key, update: _Update, return_old: bool = False) -> Any:
        """One UpdateItem. False if its condition failed (someone got there first). With `return_old`: the
        updated attributes' old values if it was written, None if not."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": key_attributes(key),
            "UpdateExpression": update.expression(),
        }
        if update.names:
            kwargs["ExpressionAttributeNames"] = update.names
        if update.values:
            kwargs["ExpressionAttributeValues"] = update.values
        if update.condition:
            kwargs["ConditionExpression"] = update.condition
        if return_old:
            kwargs["ReturnValues"] = "UPDATED_OLD"
        try:
            response = self.client.update_item(**kwargs)
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return None if return_old else False
            raise _storage_error("UpdateItem", exc) from exc
        except BotoCoreError as exc:
            raise _storage_error("UpdateItem", exc) from exc
        return from_item(response.get("Attributes") or {}) if return_old else True

    def _update_returning(self, key: Key, update: _Update) -> tuple[bool, dict[str, Any]]:
        """One conditional UpdateItem that also returns the item: (True, the new item) if written, else (False,
        the item as it is)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": key_attributes(key),
            "UpdateExpression": update.expression(),
            "ExpressionAttributeNames": update.names,
            "ExpressionAttributeValues": update.values,
            "ConditionExpression": update.condition,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            response = self.client.update_item(**kwargs)
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False, from_item(exc.response.get("Item") or {})
            raise _storage_error("UpdateItem", exc) from exc
        except BotoCoreError as exc:
            raise _storage_error("UpdateItem", exc) from exc
        return True, from_item(response.get("Attributes") or {})

    def _get(self, key: Key, consistent: bool = True) -> dict[str, Any] | None:
        try:
            response = self.client.get_item(
                TableName=self.table_name, Key=key_attributes(key), ConsistentRead=consistent
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"GetItem failed: {type(exc).__name__}") from exc
        item = response.get("Item")
        return from_item(item) if item else None

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs = {"TableName": self.table_name, "ConsistentRead": True, **kwargs}
        try:
            while True:
                page = self.client.query(**kwargs)
                yield from (from_item(item) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"Query failed: {type(exc).__name__}") from exc


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _storage_error(call: str, exc: ClientError | BotoCoreError) -> StorageError:
    """A ValidationException (or a request boto3 itself refuses) is permanent; everything else is transient."""
    if isinstance(exc, ParamValidationError) or (
        isinstance(exc, ClientError) and _error_code(exc) == "ValidationException"
    ):
        return StorageRejectedError(f"{call} rejected: the item is not valid for DynamoDB")
    code = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return StorageError(f"{call} failed: {code}")
