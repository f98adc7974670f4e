"""A conversation's turn: its pending messages in the user's order, each from its reply claim to a settled
reply: claim -> respond -> policy -> send -> record (docs/design.md, "Ordering")."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from messenger.config import DEFAULT_HANDOVER_PAUSE_S
from messenger.errors import MessengerError, RetryLaterError, StorageError, TurnLostError
from messenger.messages import InboundMessage, OutgoingMessage
from messenger.observability import logger
from messenger.policy import PolicyRefusedError, decide
from messenger.reply.ledger import MAX_ATTEMPTS, Claim, ClaimState, ReplyLedger, Settled
from messenger.reply.profiles import ProfileCache
from messenger.reply.records import inbound_from_item
from messenger.reply.responder import Responder
from messenger.reply.stats import STATS, ReplyStats
from messenger.reply.turn import RESERVE_MS, HeldTurn, TurnKeeper
from messenger.sending import (
    AmbiguousSendError,
    PermanentSendError,
    RetryPolicy,
    Sender,
    SendError,
    SendResult,
    TransientSendError,
)
from messenger.storage import UnreadMessage, event_key
from messenger.storage.codec import still_unread

RemainingMs = Callable[[], int]
# How often an unclear send looks for its confirmation (an echo or a status callback).
CONFIRM_POLL_S = 0.5


class Outcome(Enum):
    """What a turn did with one pending message (`ReplyPipeline.answer` returns one per message)."""

    SENT = "sent"  # sent now, or an unclear send the provider confirmed
    FAILED = "failed"  # refused for good, or a transient failure given up after MAX_ATTEMPTS turns
    AMBIGUOUS = "ambiguous"  # an unclear send never confirmed: given up, never sent again
    UNCONFIRMED = "unconfirmed"  # a send whose outcome is unknown (within a turn: it then awaits confirmation)
    SKIPPED = "skipped"  # the responder had nothing to send
    PAUSED = "paused"  # a person has the conversation: not answered
    ALREADY_SENT = "already_sent"  # settled before this turn: nothing sent now
    ALREADY_FAILED = "already_failed"
    ALREADY_AMBIGUOUS = "already_ambiguous"
    ALREADY_SKIPPED = "already_skipped"
    IGNORED = "ignored"  # not a new inbound message we answer


# A reply settled before this turn, by the state it was settled in.
ALREADY = {
    ClaimState.SENT: Outcome.ALREADY_SENT,
    ClaimState.FAILED: Outcome.ALREADY_FAILED,
    ClaimState.AMBIGUOUS: Outcome.ALREADY_AMBIGUOUS,
    ClaimState.SKIPPED: Outcome.ALREADY_SKIPPED,
}


@dataclass(slots=True)
class _Progress:
    """What a turn has done so far: saved when it ends, also after a failure."""

    answered_through: str
    unread: list[UnreadMessage]
    paused_until_ms: int
    added: list[UnreadMessage] = field(default_factory=list)  # sent in this turn
    keeps_unread: bool = True


class ReplyPipeline:
    """Answers a conversation's pending messages in its turn.

    A plain class, not a dataclass: `@dataclass` compiles its methods at import, a cost every cold start pays
    (docs/design.md, "Cold start: bytecode, a lean import path").
    """

    def __init__(
        self,
        *,
        ledger: ReplyLedger,
        responder: Responder,
        senders: Mapping[str, Sender],
        human_agent_enabled: bool = False,
        handover_pause_s: int = DEFAULT_HANDOVER_PAUSE_S,
        profiles: ProfileCache | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        stats: ReplyStats = STATS,
        turns: TurnKeeper | None = None,
    ) -> None:
        self.ledger = ledger
        self.responder = responder
        self.senders = senders
        self.human_agent_enabled = human_agent_enabled
        self.handover_pause_s = handover_pause_s
        self.profiles = profiles
        self.retry = retry if retry is not None else RetryPolicy()
        self.clock = clock
        self.sleep = sleep
        self.stats = stats
        # The conversation's turn: the one given, else on the ledger's table with this pipeline's clock.
        self.turns = turns if turns is not None else TurnKeeper(ledger.store, clock=clock, sleep=sleep)

    def handle(self, inbound: InboundMessage | None, remaining_ms: RemainingMs | None = None) -> Outcome:
        """`answer` for one doorbell: that message's outcome (IGNORED for a record we do not answer)."""
        return self.answer([inbound], remaining_ms).get(inbound.event_id if inbound else "", Outcome.IGNORED)

    def answer(
        self, doorbells: Sequence[InboundMessage | None], remaining_ms: RemainingMs | None = None
    ) -> dict[str, Outcome]:
        """Answer the conversation these stream records rang for: take its turn, then every pending message
        in key order (the rung ones among them, also one stored behind what was already answered).

        Returns each answered message's outcome by event id. Raises RetryLaterError (or a storage error)
        when the conversation is blocked for now: its records are delivered again, its later messages wait.
        """
        rung = [m for m in doorbells if m is not None and m.provider in self.senders]
        if len(rung) < len(doorbells):
            self.stats.inc("RecordsSkipped", len(doorbells) - len(rung))
        if not rung:
            return {}
        turn = self.turns.take(rung[0].conversation_id, remaining_ms() if remaining_ms else None)
        state = turn.state
        progress = _Progress(
            state.answered_through,
            still_unread(state.unread, state.read_watermark_ms),
            state.paused_until_ms,
            keeps_unread=rung[0].provider == "meta",
        )
        outcomes: dict[str, Outcome] = {}
        try:
            for key, inbound in self._in_order(turn, rung):
                outcomes[inbound.event_id] = self._answer_in_turn(inbound, key, turn, progress, remaining_ms)
        finally:
            marks = self.turns.end(turn, progress.answered_through, progress.unread)
            self._statuses_missed(turn.conversation, progress.added, marks)
        return outcomes

    def _statuses_missed(self, conversation: str, added: list[UnreadMessage], marks: dict[str, int]) -> None:
        """A read receipt (or delivery watermark) that came while this turn was still answering found its
        replies not yet on the unread list: give them the status it carried now."""
        for message in added:
            status = next((s for s in ("read", "delivered") if message.sent_at_ms <= marks.get(s, -1)), None)
            if status is not None:
                self.ledger.store.apply_status(conversation, message.message_id, status, at_ms=marks[status])

    def _in_order(self, turn: HeldTurn, rung: list[InboundMessage]) -> list[tuple[str, InboundMessage]]:
        """The pending messages after the cursor, and any rung message stored behind it, in key order."""
        found: dict[str, tuple[str, InboundMessage]] = {}
        for item in self.ledger.store.pending_messages(turn.conversation, turn.state.answered_through):
            message = inbound_from_item(item)
            if message is not None and message.provider in self.senders:
                found[message.event_id] = (message.event_key, message)
        for message in rung:
            found.setdefault(message.event_id, (message.event_key or _key(message), message))
        return sorted(found.values(), key=lambda pair: pair[0])

    def _answer_in_turn(
        self, inbound: InboundMessage, key: str, turn: HeldTurn, progress: _Progress, remaining_ms: RemainingMs | None
    ) -> Outcome:
        self.turns.keep(turn)  # a turn that ran out stops here, before it claims anything more
        # A message past the cursor the turn started from is not on the unread list yet, even if answered.
        outcome = self._answer_one(inbound, turn, progress, remaining_ms, key > turn.state.answered_through)
        if key > progress.answered_through:
            progress.answered_through = key
        return outcome

    def _answer_one(
        self,
        inbound: InboundMessage,
        turn: HeldTurn,
        progress: _Progress,
        remaining_ms: RemainingMs | None,
        past_cursor: bool,
    ) -> Outcome:
        sender = self.senders[inbound.provider]
        log = {"conversation_id": inbound.conversation_id, "event_id": inbound.event_id, "provider": inbound.provider}
        claim = self.ledger.claim(inbound)
        if isinstance(claim, Settled):
            self.stats.inc("RecordsSkipped")
            logger.debug("reply already settled; nothing sent", extra={**log, "state": claim.state})
            if claim.state is ClaimState.SENT and past_cursor:  # answered by a turn that died before it ended
                self._unread(progress, claim.message_ids, claim.settled_at_ms)
            return ALREADY[claim.state]
        if claim.confirm_by_ms is not None:
            return self._await_confirmation(claim, turn, progress, log, remaining_ms)
        if progress.paused_until_ms > self.clock() * 1000:
            logger.info("bot paused for this conversation; not answering", extra=log)
            return self._skipped(claim, "bot paused: a person has this conversation", Outcome.PAUSED)
        if self.profiles is not None and sender.has_profiles:
            inbound = replace(inbound, first_name=self.profiles.first_name(inbound, sender.first_name))
        try:
            replies, bodies = self._prepare(sender, inbound)
        except (PolicyRefusedError, PermanentSendError) as exc:
            return self._failed(claim, exc, log)
        except Exception:
            # A responder bug or a bad configuration: nothing was sent, so a later turn may try again.
            logger.exception("preparing the reply failed", extra=log)
            return self._retry_later(
                claim, {"error_class": "PrepareError", "code": "prepare_failed"}, log, "reply not prepared; will retry"
            )
        if not bodies:
            return self._skipped(claim, "the responder returned nothing to send", Outcome.SKIPPED)
        outcome = self._send(sender, inbound, claim, bodies, log, turn, remaining_ms)
        if outcome is Outcome.UNCONFIRMED:
            return self._await_confirmation(claim, turn, progress, log, remaining_ms)
        if outcome is Outcome.SENT:
            self._unread(progress, claim.message_ids, int(self.clock() * 1000))
            sent = {**log, "message_ids": claim.message_ids, "attempts": claim.attempts}
            if any(reply.handover for reply in replies):
                now_ms = int(self.clock() * 1000)
                progress.paused_until_ms = now_ms + self.handover_pause_s * 1000
                self.ledger.pause(inbound, progress.paused_until_ms, now_ms)
                sent.update(handover=True, pause_s=self.handover_pause_s)
            logger.info("reply sent", extra=sent)
        return outcome

    def _unread(self, progress: _Progress, message_ids: Sequence[str], sent_at_ms: int) -> None:
        """Keep sent messages for read receipts: Meta's carry only a watermark. (Vonage reports each message's
        own status, so its messages need no place on the list.)"""
        if not progress.keeps_unread:
            return
        known = {m.message_id for m in progress.unread}
        new = [UnreadMessage(mid, sent_at_ms) for mid in message_ids if mid not in known]
        progress.added.extend(new)
        progress.unread = still_unread([*progress.unread, *new], -1)

    def _await_confirmation(
        self, claim: Claim, turn: HeldTurn, progress: _Progress, log: dict[str, Any], remaining_ms: RemainingMs | None
    ) -> Outcome:
        """Wait for Meta's echo or Vonage's status to confirm an unclear send; the conversation's later
        replies wait meanwhile. Past `confirm_by_ms` it is given up as ambiguous (counted, alarmed), never
        sent again. Out of time in this invocation: RetryLaterError (the next turn waits on)."""
        assert claim.confirm_by_ms is not None
        while True:
            if self.ledger.confirmed(claim):
                self.ledger.finish(claim, ClaimState.SENT, {"reconciled_by": "echo"})
                self.stats.inc("RepliesSent")
                logger.info("unclear send confirmed by the provider; recorded as sent", extra=log)
                # When it went out, on the provider's clock as a read watermark is (else: when we sent it)
                sent_at = claim.confirmed_at_ms or claim.confirm_by_ms - self.ledger.confirm_window_ms
                self._unread(progress, claim.message_ids, sent_at)
                return Outcome.SENT
            if self.clock() * 1000 >= claim.confirm_by_ms:
                # The provider's error code stays on the claim; `given_up` says why it is settled.
                self.ledger.finish(claim, ClaimState.AMBIGUOUS, {"given_up": "unconfirmed"})
                self.stats.inc("ReplyAmbiguous")
                logger.warning("unclear send never confirmed; given up, not re-sent", extra=log)
                return Outcome.AMBIGUOUS
            if remaining_ms is not None and remaining_ms() < RESERVE_MS:
                raise RetryLaterError("waiting for an unclear send's confirmation")
            self.turns.keep(turn)
            self.sleep(CONFIRM_POLL_S)

    def _prepare(self, sender: Sender, inbound: InboundMessage) -> tuple[list[OutgoingMessage], list[dict[str, Any]]]:
        """The replies and the request bodies that send them; PolicyRefusedError/PermanentSendError if we may not."""
        replies = self.responder.respond(inbound)
        policy = decide(inbound.timestamp_ms, int(self.clock() * 1000), human_agent_enabled=self.human_agent_enabled)
        return replies, sender.plan(inbound, replies, policy)

    def _send(
        self,
        sender: Sender,
        inbound: InboundMessage,
        claim: Claim,
        bodies: list[dict[str, Any]],
        log: dict[str, Any],
        turn: HeldTurn,
        remaining_ms: RemainingMs | None,
    ) -> Outcome:
        for index in range(claim.parts_done, len(bodies)):
            try:
                self.turns.keep(turn)
            except TurnLostError:
                # Nothing of this part left: the claim must not look like a send cut off mid-request.
                with contextlib.suppress(StorageError):
                    self.ledger.finish(
                        claim, ClaimState.RETRYABLE, {"error_class": "TurnLostError", "code": "turn_lost"}
                    )
                raise
            try:
                result = self._post(sender, inbound, bodies[index], log, remaining_ms)
            except TransientSendError as exc:
                return self._retry_later(
                    claim,
                    exc.details(),
                    {**log, **exc.details(), "part": index},
                    "reply failed transiently; the record will be retried",
                )
            except PermanentSendError as exc:
                return self._failed(claim, exc, {**log, "part": index})
            except AmbiguousSendError as exc:
                return self._ambiguous(claim, exc.details(), {**log, "part": index})
            except MessengerError as exc:  # secret unavailable, configuration: raised before any request
                return self._retry_later(
                    claim,
                    {"error_class": type(exc).__name__, "code": exc.code, "reason": exc.code},
                    {**log, "error": exc.code},
                    "reply not sent; will retry",
                )
            except Exception as exc:
                logger.exception("unexpected failure while sending; not re-sent", extra=log)
                return self._ambiguous(claim, {"error_class": type(exc).__name__, "code": "unexpected"}, log)
            self._part_sent(sender, inbound, claim, bodies, index, result)
        self.stats.reply_latency(self.clock() * 1000 - inbound.timestamp_ms)
        self.ledger.finish(claim, ClaimState.SENT, {"parts_total": len(bodies), "attempts": claim.attempts})
        self.stats.inc("RepliesSent")
        return Outcome.SENT

    def _part_sent(
        self,
        sender: Sender,
        inbound: InboundMessage,
        claim: Claim,
        bodies: list[dict[str, Any]],
        index: int,
        result: SendResult,
    ) -> None:
        if result.message_id:
            self.ledger.record_outbound(
                inbound,
                result.message_id,
                status=sender.initial_status,
                text=sender.body_text(bodies[index]),
                part_index=index,
            )
        if index < len(bodies) - 1:
            self.ledger.part_sent(claim, result.message_id)  # checkpoint: a retry resumes after this part
            return
        claim.parts_done += 1  # the last part: recorded with the claim's final state
        if result.message_id:
            claim.message_ids.append(result.message_id)

    def _post(
        self,
        sender: Sender,
        inbound: InboundMessage,
        body: dict[str, Any],
        log: dict[str, Any],
        remaining_ms: RemainingMs | None,
    ) -> SendResult:
        attempt = 0
        while True:
            attempt += 1
            try:
                result = sender.post(inbound, body)
            except TransientSendError as exc:
                delay = self.retry.delay(attempt, exc.retry_after)
                if not self.retry.may_retry(attempt, delay, remaining_ms() if remaining_ms else None):
                    raise
                self.stats.inc("ReplyRetried")
                logger.debug(
                    "transient provider error; retrying",
                    extra={**log, "attempt": attempt, "delay_s": round(delay, 3), "code": exc.code},
                )
                self.sleep(delay)
                continue
            self.stats.latency(result.latency_ms)
            return result

    def _skipped(self, claim: Claim, reason: str, outcome: Outcome) -> Outcome:
        self.ledger.finish(claim, ClaimState.SKIPPED, {"reason": reason})
        self.stats.inc("RecordsSkipped")
        return outcome

    def _retry_later(self, claim: Claim, details: dict[str, Any], log: dict[str, Any], message: str) -> Outcome:
        """A transient failure: retried with the conversation's records (RetryLaterError), or, after
        MAX_ATTEMPTS turns, given up as failed (counted and alarmed) so the later messages are answered."""
        if claim.attempts >= MAX_ATTEMPTS:
            self.ledger.finish(claim, ClaimState.FAILED, {**details, "given_up": "retries_exhausted"})
            self.stats.inc("ReplyGivenUp")
            logger.error("reply failed transiently too often; given up", extra={**log, "attempts": claim.attempts})
            return Outcome.FAILED
        self.ledger.finish(claim, ClaimState.RETRYABLE, details)
        self.stats.inc("ReplyFailedTransient")
        logger.warning(message, extra=log)
        raise RetryLaterError(str(details.get("reason") or details.get("code") or "transient failure"))

    def _failed(self, claim: Claim, exc: SendError | PolicyRefusedError, log: dict[str, Any]) -> Outcome:
        details = (
            exc.details()
            if isinstance(exc, SendError)
            else {"error_class": type(exc).__name__, "code": exc.code, "reason": exc.reason}
        )
        self.ledger.finish(claim, ClaimState.FAILED, details)
        self.stats.inc("ReplyFailedPermanent")
        logger.warning("reply failed permanently; not retried", extra={**log, **details})
        return Outcome.FAILED

    def _ambiguous(self, claim: Claim, details: dict[str, Any], log: dict[str, Any]) -> Outcome:
        """The request may have been delivered: recorded as unconfirmed, then confirmed or given up."""
        self.ledger.unconfirmed(claim, details)
        logger.warning(
            "reply outcome unknown (may have been delivered); awaiting confirmation", extra={**log, **details}
        )
        return Outcome.UNCONFIRMED


def _key(message: InboundMessage) -> str:
    """The event key of a message built without its stored item (tools, tests): from its provider time."""
    return event_key(message.conversation_id, message.event_id, message.timestamp_ms)[1]
