"""The storage port: the domain verbs every other module uses, and the records they exchange.

Immutable records are NamedTuples: a class statement costs a fraction of a dataclass's at each cold start.

Two implementations keep to it: `DynamoStore` (storage/dynamodb.py, the table) and `MemoryStore`
(devkit/memory_store.py, for unit tests and benchmarks). Conversations are the ids of
`events.conversation_id(provider, page_id, user_id)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from messenger.events import Event


class NewClaim(NamedTuple):
    """What claiming the reply to one inbound message writes."""

    conversation: str
    inbound_event_id: str
    provider: str
    token: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class ReplyState:
    """A stored reply claim (see reply/ledger.py for the states)."""

    state: str
    token: str
    attempts: int = 1
    parts_done: int = 0
    message_ids: list[str] = field(default_factory=list)
    updated_at_ms: int = 0
    echo_mids: list[str] = field(default_factory=list)
    confirm_by_ms: int | None = None
    echo_at_ms: int | None = None

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> ReplyState:
        return cls(
            state=str(values.get("state", "")),
            token=str(values.get("claim_token", "")),
            attempts=int(values.get("attempts", 1)),
            parts_done=int(values.get("parts_done", 0)),
            message_ids=list(values.get("message_ids", [])),
            updated_at_ms=int(values.get("updated_at_ms", 0)),
            echo_mids=list(values.get("echo_mids", [])),
            confirm_by_ms=int(values["confirm_by_ms"]) if values.get("confirm_by_ms") else None,
            echo_at_ms=int(values["echo_at_ms"]) if values.get("echo_at_ms") else None,
        )


class OutboundMessage(NamedTuple):
    """A message we sent: recorded after the provider accepted it, updated later by status callbacks."""

    conversation: str
    provider: str
    message_id: str
    page_id: str
    user_id: str
    in_reply_to: str
    part_index: int | None  # None when unknown (an outbound message recorded from its echo)
    sent_at_ms: int
    status: str
    text: str | None = None


class UnreadMessage(NamedTuple):
    """An outbound message not yet read, kept on the conversation state so a read receipt finds it."""

    message_id: str
    sent_at_ms: int


class Turn(NamedTuple):
    """The conversation's reply turn (docs/design.md, "Ordering"), and the conversation state read with it.

    Whoever holds the turn answers the conversation's pending messages in key order; `answered_through` is
    the event key up to which they are answered ("" before the first).
    """

    token: str
    answered_through: str
    paused_until_ms: int
    unread: list[UnreadMessage]
    read_watermark_ms: int


class CachedProfile(NamedTuple):
    first_name: str | None
    expires_at: int


class Store(Protocol):
    """The events table, in domain verbs. Every write is conditional where a rule needs it; False = no change."""

    retention_s: int

    # -- provider events (webhook) --------------------------------------------------------------------
    def store_event(self, event: Event, now_s: int | None = None) -> bool:
        """Store the event once. True if written now, False if it was already there (a redelivery).

        An event over DynamoDB's limits is stored bounded (codec.event_forms); StorageRejectedError when no
        form of it can be stored (permanent: skip it); StorageError when storage is unavailable (transient).
        """

    def apply_status(
        self, conversation: str, message_id: str, status: str, *, at_ms: int, error: dict[str, Any] | None = None
    ) -> bool:
        """Move an outbound message to `status` unless it is already there or further. True if moved."""

    def outbound_before(self, conversation: str, watermark_ms: int, below: str = "read") -> list[str]:
        """Ids of the conversation's unread outbound messages sent after its last `below` watermark and at or
        before `watermark_ms` (from the conversation state: the cost follows what it marks, not the
        conversation's length). `advance_watermark` records the new watermark afterwards."""

    def advance_watermark(self, conversation: str, status: str, watermark_ms: int) -> bool:
        """Keep `watermark_ms` as the conversation's `status` ("delivered"/"read") watermark unless a later one
        is there. True if moved."""

    def reconcile_echo(self, conversation: str, inbound_event_id: str, echo_mid: str, at_ms: int | None = None) -> bool:
        """Keep an echo's mid (and the provider's time of the first, `at_ms`) on the reply claim it answers;
        settle that claim as sent if its send was unconfirmed or given up.

        A claim settled by echoes also gets the echo's mid in its `message_ids`. True only if it settled now.
        """

    # -- conversation state -----------------------------------------------------------------------------
    def set_pause(self, conversation: str, paused_until_ms: int, at_ms: int, reason: str) -> bool:
        """Pause (or resume, with 0) the bot; an older change (`at_ms`) never overrides a newer one."""

    def paused_until(self, conversation: str) -> int:
        """Epoch ms until which the bot stays quiet in this conversation (0 when it may answer)."""

    # -- the reply turn --------------------------------------------------------------------------------
    def take_turn(self, conversation: str, token: str, *, now_ms: int, until_ms: int) -> Turn | int:
        """Take the conversation's reply turn until `until_ms` if nobody holds it (or the holder's time ran
        out). The Turn with the conversation's state; else the epoch ms until which the holder has it."""

    def pending_messages(self, conversation: str, after: str) -> list[dict[str, Any]]:
        """The conversation's stored inbound messages with keys after `after`, in key order, decoded (each
        with its `conversation_id`). `after` "" reads from the first."""

    def turn_held_until(self, conversation: str) -> int:
        """Epoch ms until which someone holds the conversation's turn (0 when nobody does). An eventually
        consistent read: a waiting record looks with it (half a read unit) and only then tries the turn."""

    def renew_turn(self, conversation: str, token: str, *, until_ms: int) -> None:
        """Hold the turn until `until_ms`. TurnLostError when another invocation holds it now."""

    def end_turn(
        self, conversation: str, token: str, *, answered_through: str, unread: list[UnreadMessage]
    ) -> dict[str, int]:
        """Save the progress (the cursor, the unread outbound messages) and let go of the turn. Returns the
        conversation's status watermarks as they are now ({"read": ms, ...}), for replies a read receipt
        covered before they joined the list. TurnLostError when another invocation holds it (nothing written)."""

    # -- the reply ledger ---------------------------------------------------------------------------------
    def claim_reply(self, claim: NewClaim) -> ReplyState | None:
        """Create the claim. None if it is ours now; otherwise the claim that was already there."""

    def reclaim_reply(
        self,
        conversation: str,
        inbound_event_id: str,
        *,
        old_state: str,
        old_token: str,
        values: dict[str, Any],
    ) -> bool:
        """Take over a claim still in `old_state` and held by `old_token`, writing `values` (its new state,
        token, attempts...). False if someone else moved it first."""

    def settle_reply(self, conversation: str, inbound_event_id: str, token: str, values: dict[str, Any]) -> bool:
        """Update the claim's fields (state, progress, outcome) if `token` still holds it."""

    def reply_state(self, conversation: str, inbound_event_id: str) -> ReplyState | None: ...

    def record_outbound(self, message: OutboundMessage) -> None:
        """Upsert the outbound message; a status a callback stored first is kept (never moved back)."""

    # -- profiles -------------------------------------------------------------------------------------------
    def cached_profile(self, conversation: str) -> CachedProfile | None: ...

    def cache_profile(self, conversation: str, first_name: str | None, expires_at: int) -> None: ...

    # -- data deletion --------------------------------------------------------------------------------------
    def delete_user_data(self, code: str, user_hash: str, conversations: list[str]) -> int:
        """Record the request under `code`, delete every item of the conversations, mark it completed."""

    def deletion(self, code: str) -> dict[str, Any] | None: ...

    # -- reading (support, tests) -----------------------------------------------------------------------------
    def conversation_items(self, conversation: str) -> list[dict[str, Any]]:
        """Every item of one conversation, decoded, in key order."""

    def message(self, conversation: str, message_id: str) -> dict[str, Any] | None: ...
