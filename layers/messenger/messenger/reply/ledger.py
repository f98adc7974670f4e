"""The reply ledger: the `REPLY#` claim that makes sending idempotent, and the `MSG#` outbound items.

Claim states (attribute `state`):

    claimed --> sent | failed | ambiguous | skipped     (terminal: a redelivered record sends nothing)
        \\--> retryable --(next turn re-claims)--> claimed        (given up as failed after MAX_ATTEMPTS)
        \\--> unconfirmed --(echo or status with our reference)--> sent
                        \\--(no confirmation by `confirm_by_ms`)--> ambiguous (given up, alarmed)

Every update after the claim is fenced by the owner's `claim_token`, so two workers can never both send.
Claims are only made by the holder of the conversation's reply turn (reply/turn.py), so a
`claimed` item found by the next holder belongs to an invocation that ended mid-send (its turn ran out):
whether the request left is unknown, so it becomes `unconfirmed` and is never sent again blindly.
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
    UNCONFIRMED = "unconfirmed"


# A reply that failed transiently this many times (turns) is given up as failed, so the conversation's
# later messages are answered; below the event source mapping's MaximumRetryAttempts (template.yaml).
MAX_ATTEMPTS = 4
# How long an unclear send waits for Meta's echo or Vonage's status callback before it is given up as
# ambiguous (docs/design.md, "Unknown outcomes"). The conversation's later replies wait meanwhile.
CONFIRM_WINDOW_MS = 30_000


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
    # Set while the send's outcome is unknown: the epoch ms until which a confirmation is awaited.
    confirm_by_ms: int | None = None
    # The provider's time of the echo or status that confirmed an unclear send (when it went out).
    confirmed_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """The reply was already settled: nothing to send. `message_ids` are what it sent (for read receipts)."""

    state: ClaimState
    message_ids: tuple[str, ...] = ()
    settled_at_ms: int = 0


class ReplyLedger:
    def __init__(
        self, store: Store, *, clock: Callable[[], float] = time.time, confirm_window_ms: int = CONFIRM_WINDOW_MS
    ):
        self.store = store
        self.clock = clock
        self.confirm_window_ms = confirm_window_ms

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def pause(self, inbound: InboundMessage, until_ms: int, at_ms: int) -> None:
        self.store.set_pause(inbound.conversation_id, until_ms, at_ms, "handover_requested")

    def claim(self, inbound: InboundMessage) -> Claim | Settled:
        """Own the reply to `inbound` (the caller holds the conversation's turn), or learn that it is settled.

        A `retryable` claim is taken over with one more attempt; a `claimed` one (its invocation ended
        mid-send) or an `unconfirmed` one is taken over as unconfirmed: the caller awaits its confirmation.
        """
        token = uuid.uuid4().hex
        now_ms = self._now_ms()
        conversation, event_id = inbound.conversation_id, inbound.event_id
        existing = self.store.claim_reply(NewClaim(conversation, event_id, inbound.provider, token, now_ms))
        if existing is None:
            return Claim(conversation, event_id, token, attempts=1)
        if existing.state in TERMINAL:
            return Settled(ClaimState(existing.state), tuple(existing.message_ids), existing.updated_at_ms)
        claim = Claim(conversation, event_id, token, existing.attempts, existing.parts_done, list(existing.message_ids))
        values: dict[str, Any] = {"claim_token": token, "updated_at_ms": now_ms}
        if existing.state == ClaimState.RETRYABLE:
            claim.attempts += 1
            values.update(state=ClaimState.CLAIMED.value, attempts=claim.attempts)
        else:
            # Unknown whether the request left: confirm it, never send again blindly. A confirmation window
            # runs from the unclear send (for a claim whose invocation ended mid-send: its last update).
            claim.confirm_by_ms = existing.confirm_by_ms or existing.updated_at_ms + self.confirm_window_ms
            values.update(state=ClaimState.UNCONFIRMED.value, confirm_by_ms=claim.confirm_by_ms)
        if not self.store.reclaim_reply(
            conversation, event_id, old_state=existing.state, old_token=existing.token, values=values
        ):
            raise ClaimBusyError("another invocation took this reply over first")
        return claim

    def unconfirmed(self, claim: Claim, details: dict[str, Any]) -> None:
        """The send's outcome is unknown: await a confirmation until the window closes."""
        claim.confirm_by_ms = self._now_ms() + self.confirm_window_ms
        self.finish(claim, ClaimState.UNCONFIRMED, {**details, "confirm_by_ms": claim.confirm_by_ms})

    def confirmed(self, claim: Claim) -> bool:
        """True when Meta's echo (or Vonage's status callback with our reference) shows that the unclear send
        went out. The confirmed message ids join the claim's `message_ids`, so settling the claim records them
        and their delivery and read statuses are tracked like any reply's."""
        state = self.store.reply_state(claim.conversation, claim.inbound_event_id)
        if state is None:
            return False
        unknown = [mid for mid in state.echo_mids if mid not in claim.message_ids]
        claim.message_ids.extend(unknown)
        claim.confirmed_at_ms = state.echo_at_ms
        return state.state == ClaimState.SENT or bool(unknown)

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
