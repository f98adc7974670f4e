"""The reply ledger: the `REPLY#` claim that makes sending idempotent, and the `MSG#` outbound items.

Claim states (attribute `state`):

    claimed --> sent | failed | ambiguous | skipped     (terminal: a redelivered record sends nothing)
        \\--> retryable --(next delivery re-claims)--> claimed

Every update after the claim is fenced by the owner's `claim_token`, so two workers can never both send.
A `claimed` item whose owner vanished (the invocation crashed or timed out mid-send) cannot tell whether
the request left: after `stale_after_s` it is marked ambiguous, never re-sent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from messenger import handover
from messenger.errors import StorageError
from messenger.messages import InboundMessage
from messenger.models import STATUS_RANK, RecordType
from messenger.storage import EventStore, conversation_sort, message_key, reply_key, to_attribute, to_item

OUTBOUND_TEXT_LIMIT = 2000


class ClaimState(StrEnum):
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"
    SKIPPED = "skipped"
    RETRYABLE = "retryable"


TERMINAL = frozenset({ClaimState.SENT, ClaimState.FAILED, ClaimState.AMBIGUOUS, ClaimState.SKIPPED})


class ClaimBusyError(StorageError):
    """Another worker holds a fresh claim on this reply: try the record again later."""

    code = "claim_busy"


@dataclass(slots=True)
class Claim:
    pk: str
    token: str
    attempts: int
    parts_done: int = 0
    message_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Settled:
    """The reply was already settled (or is now, for a stale claim): nothing to send."""

    state: str


class ReplyLedger:
    def __init__(self, store: EventStore, *, clock: Callable[[], float] = time.time, stale_after_s: int = 900):
        self.store = store
        self.clock = clock
        self.stale_after_s = stale_after_s

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def echoed(self, claim: Claim) -> bool:
        """True when Meta already echoed a message of this reply (so an unclear send did go out)."""
        item = self.store.get(claim.pk)
        return bool(item and item.get("echo_mids"))

    def paused_until(self, inbound: InboundMessage) -> int:
        """Epoch ms until which a person has this conversation (0: the bot may answer)."""
        return handover.paused_until(self.store, inbound.provider, inbound.page_id, inbound.user_id)

    def pause(self, inbound: InboundMessage, until_ms: int, at_ms: int) -> None:
        handover.set_pause(self.store, inbound.conversation_id, until_ms, at_ms, "handover_requested")

    def claim(self, inbound: InboundMessage) -> Claim | Settled:
        """Own the reply to `inbound`, or learn that it is settled. ClaimBusyError if someone else is on it."""
        pk = reply_key(inbound.provider, inbound.event_id)
        token = uuid.uuid4().hex
        now_ms = self._now_ms()
        item = to_item({
            "pk": pk, "record_type": RecordType.REPLY.value, "provider": inbound.provider,
            "inbound_event_id": inbound.event_id, "conversation_id": inbound.conversation_id,
            "state": ClaimState.CLAIMED.value, "claim_token": token, "attempts": 1, "parts_done": 0,
            "claimed_at_ms": now_ms, "updated_at_ms": now_ms,
            "expires_at": int(self.clock()) + self.store.retention_s,
        })
        if self.store.put_new(item):
            return Claim(pk, token, attempts=1)
        existing = self.store.get(pk)
        if existing is None:  # expired and deleted between the two calls: claim afresh
            if self.store.put_new(item):
                return Claim(pk, token, attempts=1)
            raise ClaimBusyError("reply claim raced")
        state = existing.get("state")
        if state in TERMINAL:
            return Settled(state)
        if state == ClaimState.RETRYABLE:
            return self._reclaim(pk, existing, token, now_ms)
        if now_ms - int(existing.get("updated_at_ms", 0)) > self.stale_after_s * 1000:
            self._finish(pk, str(existing.get("claim_token")), ClaimState.AMBIGUOUS,
                         {"error_class": "StaleClaim", "code": "stale_claim",
                          "reason": "a previous attempt stopped mid-send; it may or may not have been delivered"})
            return Settled(ClaimState.AMBIGUOUS.value)
        raise ClaimBusyError("another invocation is sending this reply")

    def _reclaim(self, pk: str, existing: dict[str, Any], token: str, now_ms: int) -> Claim:
        attempts = int(existing.get("attempts", 1)) + 1
        moved = self.store.update(
            pk,
            "SET #state = :claimed, claim_token = :token, attempts = :attempts, updated_at_ms = :now",
            "#state = :retryable AND claim_token = :old",
            {"#state": "state"},
            {":claimed": {"S": ClaimState.CLAIMED.value}, ":token": {"S": token}, ":attempts": {"N": str(attempts)},
             ":now": {"N": str(now_ms)}, ":retryable": {"S": ClaimState.RETRYABLE.value},
             ":old": {"S": str(existing.get("claim_token", ""))}},
        )
        if not moved:
            raise ClaimBusyError("another invocation re-claimed this reply first")
        return Claim(pk, token, attempts, int(existing.get("parts_done", 0)), list(existing.get("message_ids", [])))

    def part_sent(self, claim: Claim, message_id: str | None) -> None:
        """Checkpoint one sent part, so a retry after a later part's failure resumes after it."""
        claim.parts_done += 1
        if message_id:
            claim.message_ids.append(message_id)
        self._set(claim.pk, claim.token, {"parts_done": claim.parts_done, "message_ids": claim.message_ids})

    def finish(self, claim: Claim, state: ClaimState, details: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"parts_done": claim.parts_done, "message_ids": claim.message_ids, **(details or {})}
        self._finish(claim.pk, claim.token, state, values)

    def _finish(self, pk: str, token: str, state: ClaimState, values: dict[str, Any]) -> None:
        values = {**values, "state": state.value}
        if state in TERMINAL:
            values["settled_at_ms"] = self._now_ms()
        self._set(pk, token, values)

    def _set(self, pk: str, token: str, values: dict[str, Any]) -> None:
        values = {k: v for k, v in values.items() if v is not None}
        values["updated_at_ms"] = self._now_ms()
        names = {f"#a{i}": name for i, name in enumerate(values)}
        attrs = {f":v{i}": to_attribute(value) for i, value in enumerate(values.values())}
        attrs[":token"] = {"S": token}
        update = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
        if not self.store.update(pk, update, "claim_token = :token", names, attrs):
            raise ClaimBusyError("the reply claim was taken over by another invocation")

    def record_outbound(self, inbound: InboundMessage, message_id: str, *, status: str, text: str | None,
                        part_index: int) -> None:
        """Upsert the `MSG#` item a status callback may already have created: never move its status back."""
        pk = message_key(inbound.provider, message_id)
        now_ms = self._now_ms()
        fields: dict[str, Any] = {
            "record_type": RecordType.OUTBOUND.value, "provider": inbound.provider, "message_id": message_id,
            "page_id": inbound.page_id, "user_id": inbound.user_id, "conversation_id": inbound.conversation_id,
            "conversation_sort": conversation_sort(now_ms, pk), "in_reply_to": inbound.event_id,
            "part_index": part_index, "sent_at_ms": now_ms,
        }
        if text:
            fields["text"] = text[:OUTBOUND_TEXT_LIMIT]
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": to_attribute(value) for i, value in enumerate(fields.values())}
        update = "SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields)))
        update += (", #status = if_not_exists(#status, :status), status_rank = if_not_exists(status_rank, :rank)"
                   ", status_at_ms = if_not_exists(status_at_ms, :now), expires_at = if_not_exists(expires_at, :exp)")
        names["#status"] = "status"
        values.update({":status": {"S": status}, ":rank": {"N": str(STATUS_RANK[status])},
                       ":now": {"N": str(now_ms)}, ":exp": {"N": str(int(self.clock()) + self.store.retention_s)}})
        self.store.update(pk, update, None, names, values)
