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

from messenger.errors import StorageError
from messenger.messages import InboundMessage
from messenger.storage import NewClaim, OutboundMessage, Store


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
    conversation: str
    inbound_event_id: str
    token: str
    attempts: int
    parts_done: int = 0
    message_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Settled:
    """The reply was already settled (or is now, for a stale claim): nothing to send."""

    state: str


class ReplyLedger:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time, stale_after_s: int = 900):
        self.store = store
        self.clock = clock
        self.stale_after_s = stale_after_s

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def echoed(self, claim: Claim) -> bool:
        """True when Meta already echoed a message of this reply that the claim does not know (so an unclear
        send did go out). Those echoed mids join the claim's `message_ids`, so settling the claim records them
        and their delivery and read statuses are tracked like any reply's."""
        state = self.store.reply_state(claim.conversation, claim.inbound_event_id)
        unknown = [mid for mid in (state.echo_mids if state else []) if mid not in claim.message_ids]
        claim.message_ids.extend(unknown)
        return bool(unknown)

    def paused_until(self, inbound: InboundMessage) -> int:
        """Epoch ms until which a person has this conversation (0: the bot may answer)."""
        return self.store.paused_until(inbound.conversation_id)

    def pause(self, inbound: InboundMessage, until_ms: int, at_ms: int) -> None:
        self.store.set_pause(inbound.conversation_id, until_ms, at_ms, "handover_requested")

    def claim(self, inbound: InboundMessage) -> Claim | Settled:
        """Own the reply to `inbound`, or learn that it is settled. ClaimBusyError if someone else is on it."""
        token = uuid.uuid4().hex
        now_ms = self._now_ms()
        conversation, event_id = inbound.conversation_id, inbound.event_id
        existing = self.store.claim_reply(NewClaim(conversation, event_id, inbound.provider, token, now_ms))
        if existing is None:
            return Claim(conversation, event_id, token, attempts=1)
        if existing.state in TERMINAL:
            return Settled(existing.state)
        if existing.state == ClaimState.RETRYABLE:
            attempts = existing.attempts + 1
            if not self.store.reclaim_reply(
                conversation, event_id, old_token=existing.token, token=token, attempts=attempts, now_ms=now_ms
            ):
                raise ClaimBusyError("another invocation re-claimed this reply first")
            return Claim(conversation, event_id, token, attempts, existing.parts_done, list(existing.message_ids))
        if now_ms - existing.updated_at_ms > self.stale_after_s * 1000:
            stale = Claim(
                conversation,
                event_id,
                existing.token,
                existing.attempts,
                existing.parts_done,
                list(existing.message_ids),
            )
            self._finish(
                stale,
                ClaimState.AMBIGUOUS,
                {
                    "error_class": "StaleClaim",
                    "code": "stale_claim",
                    "reason": "a previous attempt stopped mid-send; it may or may not have been delivered",
                },
            )
            return Settled(ClaimState.AMBIGUOUS.value)
        raise ClaimBusyError("another invocation is sending this reply")

    def part_sent(self, claim: Claim, message_id: str | None) -> None:
        """Checkpoint one sent part, so a retry after a later part's failure resumes after it."""
        claim.parts_done += 1
        if message_id:
            claim.message_ids.append(message_id)
        self._set(claim, {"parts_done": claim.parts_done, "message_ids": claim.message_ids})

    def finish(self, claim: Claim, state: ClaimState, details: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"parts_done": claim.parts_done, "message_ids": claim.message_ids, **(details or {})}
        self._finish(claim, state, values)

    def _finish(self, claim: Claim, state: ClaimState, values: dict[str, Any]) -> None:
        values = {**values, "state": state.value}
        if state in TERMINAL:
            values["settled_at_ms"] = self._now_ms()
        self._set(claim, values)

    def _set(self, claim: Claim, values: dict[str, Any]) -> None:
        values = {k: v for k, v in values.items() if v is not None}
        values["updated_at_ms"] = self._now_ms()
        if not self.store.settle_reply(claim.conversation, claim.inbound_event_id, claim.token, values):
            raise ClaimBusyError("the reply claim was taken over by another invocation")

    def record_outbound(
        self, inbound: InboundMessage, message_id: str, *, status: str, text: str | None, part_index: int
    ) -> None:
        """Record the outbound message; a status callback that came first keeps its (later) status."""
        self.store.record_outbound(
            OutboundMessage(
                conversation=inbound.conversation_id,
                provider=inbound.provider,
                message_id=message_id,
                page_id=inbound.page_id,
                user_id=inbound.user_id,
                in_reply_to=inbound.event_id,
                part_index=part_index,
                sent_at_ms=self._now_ms(),
                status=status,
                text=text,
            )
        )
