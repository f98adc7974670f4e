"""`MemoryStore`: the storage port in a dict, for unit tests and benchmarks (the one in-memory fake).

Same keys, same conditions and the same answers as DynamoStore; thread-safe. `operations` counts the
table calls DynamoStore would make for the same verbs, so tests and benches can check the cost too.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from typing import Any

from messenger.errors import StorageRejectedError, TurnLostError
from messenger.events import STATUS_RANK, Event, RecordType
from messenger.storage import codec
from messenger.storage.codec import Key
from messenger.storage.port import CachedProfile, NewClaim, OutboundMessage, ReplyState, Turn, UnreadMessage


class MemoryStore:
    def __init__(self, retention_days: int = 90) -> None:
        self.retention_s = retention_days * 86400
        self.items: dict[Key, dict[str, Any]] = {}
        self.operations: Counter[str] = Counter()
        self._lock = threading.RLock()

    def _expires(self, now_s: int | None = None) -> int:
        return (now_s or int(time.time())) + self.retention_s

    def _item(self, key: Key, op: str = "GetItem") -> dict[str, Any] | None:
        self.operations[op] += 1
        item = self.items.get(key)
        return copy.deepcopy(item) if item is not None else None

    def _upsert(self, key: Key, values: dict[str, Any], absent: dict[str, Any] | None = None) -> dict[str, Any]:
        item = copy.deepcopy(self.items.get(key, {"pk": key[0], "sk": key[1]}))
        item.update({k: copy.deepcopy(v) for k, v in values.items() if v is not None})
        for name, value in (absent or {}).items():
            item.setdefault(name, value)
        _check(codec.to_item(item))
        self.items[key] = item
        return item

    def get(self, key: Key) -> dict[str, Any] | None:
        """An item by its key (for tests)."""
        with self._lock:
            item = self.items.get(key)
            return copy.deepcopy(item) if item is not None else None

    # -- provider events ----------------------------------------------------------------------------

    def store_event(self, event: Event, now_s: int | None = None) -> bool:
        rejected: StorageRejectedError | None = None
        for item in codec.event_forms(event, now_s=now_s or int(time.time()), retention_s=self.retention_s):
            key = (item["pk"]["S"], item["sk"]["S"])
            with self._lock:
                self.operations["PutItem"] += 1
                try:
                    _check(item)
                except StorageRejectedError as exc:
                    rejected = exc
                    continue
                if key in self.items:
                    return False
                self.items[key] = codec.from_item(item)
                return True
        raise StorageRejectedError("the event cannot be stored in any form") from rejected

    def apply_status(
        self, conversation: str, message_id: str, status: str, *, at_ms: int, error: dict[str, Any] | None = None
    ) -> bool:
        rank = STATUS_RANK.get(status)
        if rank is None:
            return False
        key = codec.message_key(conversation, message_id)
        with self._lock:
            self.operations["UpdateItem"] += 1
            current = self.items.get(key, {}).get("status_rank")
            if current is not None and current >= rank:
                return False
            self._upsert(
                key,
                {
                    "record_type": RecordType.OUTBOUND.value,
                    "message_id": message_id,
                    "status": status,
                    "status_rank": rank,
                    "status_at_ms": at_ms,
                    "status_error": error,
                },
                {"expires_at": self._expires()},
            )
            return True

    def outbound_before(self, conversation: str, watermark_ms: int, below: str = "read") -> list[str]:
        with self._lock:
            state = self._item(codec.state_key(conversation)) or {}
        return codec.unread_between(state, below, watermark_ms)

    def advance_watermark(self, conversation: str, status: str, watermark_ms: int) -> bool:
        key, name = codec.state_key(conversation), codec.watermark_attribute(status)
        with self._lock:
            self.operations["UpdateItem"] += 1
            if self.items.get(key, {}).get(name, -1) >= watermark_ms:
                return False
            self._upsert(
                key, {name: watermark_ms}, {"record_type": RecordType.STATE.value, "expires_at": self._expires()}
            )
            return True

    def reconcile_echo(self, conversation: str, inbound_event_id: str, echo_mid: str, at_ms: int | None = None) -> bool:
        key = codec.reply_key(conversation, inbound_event_id)
        with self._lock:
            self.operations["UpdateItem"] += 1
            item = self.items.get(key)
            if item is None:
                return False
            item["echo_mids"] = sorted(set(item.get("echo_mids", [])) | {echo_mid})
            if at_ms is not None:
                item.setdefault("echo_at_ms", at_ms)
            self.operations["UpdateItem"] += 1
            settles = item.get("state") in codec.CONFIRMABLE
            if settles or (item.get("reconciled_by") == "echo" and echo_mid not in item.get("message_ids", [])):
                item.update(state="sent", reconciled_by="echo", message_ids=[*item.get("message_ids", []), echo_mid])
            return settles

    # -- conversation state ---------------------------------------------------------------------------

    def set_pause(self, conversation: str, paused_until_ms: int, at_ms: int, reason: str) -> bool:
        key = codec.state_key(conversation)
        with self._lock:
            self.operations["UpdateItem"] += 1
            if self.items.get(key, {}).get("state_at_ms", at_ms) > at_ms:
                return False
            self._upsert(
                key,
                {
                    "paused_until_ms": paused_until_ms,
                    "state_at_ms": at_ms,
                    "pause_reason": reason,
                    "record_type": RecordType.STATE.value,
                    "expires_at": self._expires(),
                },
            )
            return True

    def paused_until(self, conversation: str) -> int:
        with self._lock:
            item = self._item(codec.state_key(conversation))
        return int(item.get("paused_until_ms", 0)) if item else 0

    # -- the reply turn -------------------------------------------------------------------------------------

    def take_turn(self, conversation: str, token: str, *, now_ms: int, until_ms: int) -> Turn | int:
        key = codec.state_key(conversation)
        with self._lock:
            self.operations["UpdateItem"] += 1
            held_until = self.items.get(key, {}).get(codec.TURN_UNTIL)
            if held_until is not None and held_until >= now_ms:
                return int(held_until)
            item = self._upsert(
                key,
                {codec.TURN_TOKEN: token, codec.TURN_UNTIL: until_ms, "expires_at": self._expires()},
                {"record_type": RecordType.STATE.value},
            )
            return codec.turn_from_state(item)

    def pending_messages(self, conversation: str, after: str) -> list[dict[str, Any]]:
        now = int(time.time())
        with self._lock:
            self.operations["Query"] += 1
            return [
                {**copy.deepcopy(item), "conversation_id": pk}
                for (pk, sk), item in self._conversation(conversation)
                if max(after, codec.EVENTS_FIRST) < sk <= codec.EVENTS_LAST
                and item.get("record_type") == RecordType.INBOUND.value
                and item.get("expires_at", now + 1) > now
            ]

    def turn_held_until(self, conversation: str) -> int:
        with self._lock:
            item = self._item(codec.state_key(conversation))
        return int(item.get(codec.TURN_UNTIL, 0)) if item else 0

    def renew_turn(self, conversation: str, token: str, *, until_ms: int) -> None:
        with self._lock:
            self.operations["UpdateItem"] += 1
            item = self.items.get(codec.state_key(conversation), {})
            if item.get(codec.TURN_TOKEN) != token:
                raise TurnLostError("another invocation holds this conversation's turn now")
            item[codec.TURN_UNTIL] = until_ms

    def end_turn(
        self, conversation: str, token: str, *, answered_through: str, unread: list[UnreadMessage]
    ) -> dict[str, int]:
        with self._lock:
            self.operations["UpdateItem"] += 1
            item = self.items.get(codec.state_key(conversation), {})
            if item.get(codec.TURN_TOKEN) != token:
                raise TurnLostError("another invocation holds this conversation's turn now")
            if answered_through:
                item[codec.ANSWERED_THROUGH] = answered_through
            item[codec.UNREAD] = [list(message) for message in unread]
            item.pop(codec.TURN_TOKEN, None)
            item.pop(codec.TURN_UNTIL, None)
            return codec.watermarks(item)

    # -- the reply ledger -------------------------------------------------------------------------------

    def claim_reply(self, claim: NewClaim) -> ReplyState | None:
        key = codec.reply_key(claim.conversation, claim.inbound_event_id)
        with self._lock:
            self.operations["PutItem"] += 1
            if key in self.items:
                return ReplyState.from_values(self.items[key])
            self._upsert(key, codec.claim_values(claim, self._expires()))
            return None

    def reclaim_reply(
        self,
        conversation: str,
        inbound_event_id: str,
        *,
        old_state: str,
        old_token: str,
        values: dict[str, Any],
    ) -> bool:
        key = codec.reply_key(conversation, inbound_event_id)
        with self._lock:
            self.operations["UpdateItem"] += 1
            item = self.items.get(key)
            if item is None or item.get("state") != old_state or item.get("claim_token") != old_token:
                return False
            self._upsert(key, values)
            return True

    def settle_reply(self, conversation: str, inbound_event_id: str, token: str, values: dict[str, Any]) -> bool:
        key = codec.reply_key(conversation, inbound_event_id)
        with self._lock:
            self.operations["UpdateItem"] += 1
            item = self.items.get(key)
            if item is None or item.get("claim_token") != token:
                return False
            self._upsert(key, values)
            return True

    def reply_state(self, conversation: str, inbound_event_id: str) -> ReplyState | None:
        with self._lock:
            item = self._item(codec.reply_key(conversation, inbound_event_id))
        return ReplyState.from_values(item) if item else None

    def record_outbound(self, message: OutboundMessage) -> None:
        key = codec.message_key(message.conversation, message.message_id)
        with self._lock:
            self.operations["UpdateItem"] += 1
            self._upsert(key, codec.outbound_values(message), codec.outbound_defaults(message, self._expires()))

    # -- profiles ---------------------------------------------------------------------------------------------

    def cached_profile(self, conversation: str) -> CachedProfile | None:
        with self._lock:
            item = self._item(codec.profile_key(conversation))
        return CachedProfile(item.get("first_name") or None, int(item.get("profile_expires_at", 0))) if item else None

    def cache_profile(self, conversation: str, first_name: str | None, expires_at: int) -> None:
        key = codec.profile_key(conversation)
        with self._lock:
            self.operations["UpdateItem"] += 1
            item = self._upsert(
                key,
                {
                    "record_type": RecordType.PROFILE.value,
                    "profile_expires_at": expires_at,
                    "expires_at": expires_at,
                    "first_name": first_name or None,
                },
            )
            if not first_name:
                item.pop("first_name", None)

    # -- data deletion ----------------------------------------------------------------------------------------

    def delete_user_data(self, code: str, user_hash: str, conversations: list[str]) -> int:
        now = int(time.time())
        key = codec.deletion_key(code)
        with self._lock:
            self.operations["PutItem"] += 1
            self.items.setdefault(
                key,
                {
                    "pk": key[0],
                    "sk": key[1],
                    "record_type": RecordType.DELETION.value,
                    "status": "in_progress",
                    "user_hash": user_hash,
                    "requested_at": now,
                    "expires_at": self._expires(now),
                },
            )
            doomed = [k for k in self.items if k[0] in set(conversations)]
            for doomed_key in doomed:
                del self.items[doomed_key]
            self.operations["Query"] += len(conversations)
            self.operations["BatchWriteItem"] += -(-len(doomed) // 25)
            self.operations["UpdateItem"] += 1
            self.items[key].update(status="completed", deleted_items=len(doomed), completed_at=int(time.time()))
            return len(doomed)

    def deletion(self, code: str) -> dict[str, Any] | None:
        with self._lock:
            return self._item(codec.deletion_key(code))

    # -- reading ------------------------------------------------------------------------------------------------

    def conversation_items(self, conversation: str) -> list[dict[str, Any]]:
        with self._lock:
            self.operations["Query"] += 1
            return [copy.deepcopy(item) for _, item in self._conversation(conversation)]

    def _conversation(self, conversation: str) -> list[tuple[Key, dict[str, Any]]]:
        """A conversation's items in key order, as a Query returns them (sorting only its own: the benchmarks
        keep thousands of other items in the store)."""
        return sorted((key, item) for key, item in self.items.items() if key[0] == conversation)

    def message(self, conversation: str, message_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._item(codec.message_key(conversation, message_id))


def _check(item: dict[str, Any]) -> None:
    """Refuse what DynamoDB refuses with a ValidationException (codec.check_item)."""
    reason = codec.check_item(item)
    if reason:
        raise StorageRejectedError(f"rejected: {reason}")
