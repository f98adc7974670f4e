"""One inbound message, from the reply claim to a settled reply: claim -> respond -> policy -> send -> record."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from messenger.config import DEFAULT_HANDOVER_PAUSE_S
from messenger.delivery import (
    AmbiguousSendError,
    PermanentSendError,
    RetryPolicy,
    Sender,
    SendError,
    SendResult,
    TransientSendError,
)
from messenger.errors import MessengerError, RetryLaterError
from messenger.messages import InboundMessage, OutgoingMessage
from messenger.observability import logger
from messenger.outbox import Claim, ClaimState, ReplyLedger, Settled
from messenger.policy import PolicyRefusedError, decide
from messenger.profiles import ProfileCache
from messenger.reply.stats import STATS, ReplyStats
from messenger.responder import Responder

RemainingMs = Callable[[], int]


@dataclass
class ReplyPipeline:
    ledger: ReplyLedger
    responder: Responder
    senders: Mapping[str, Sender]
    human_agent_enabled: bool = False
    handover_pause_s: int = DEFAULT_HANDOVER_PAUSE_S
    profiles: ProfileCache | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    stats: ReplyStats = field(default_factory=lambda: STATS)

    def handle(self, inbound: InboundMessage | None, remaining_ms: RemainingMs | None = None) -> str:
        """Answer one inbound message (None: a record we do not answer). Returns the outcome; raises
        RetryLaterError (or a storage error) for the record to be delivered again."""
        sender = self.senders.get(inbound.provider) if inbound else None
        if inbound is None or sender is None:
            self.stats.inc("RecordsSkipped")
            return "ignored"
        log = {"conversation_id": inbound.conversation_id, "event_id": inbound.event_id, "provider": inbound.provider}
        claim = self.ledger.claim(inbound)
        if isinstance(claim, Settled):
            self.stats.inc("RecordsSkipped")
            logger.info("reply already settled; nothing sent", extra={**log, "state": claim.state})
            return f"already_{claim.state}"
        if self.ledger.paused_until(inbound) > self.clock() * 1000:
            logger.info("bot paused for this conversation; not answering", extra=log)
            return self._skipped(claim, "bot paused: a person has this conversation", "paused")
        if self.profiles is not None and sender.has_profiles:
            inbound = replace(inbound, first_name=self.profiles.first_name(inbound, sender.first_name))
        try:
            replies, bodies = self._prepare(sender, inbound, claim, log)
        except (PolicyRefusedError, PermanentSendError) as exc:
            return self._failed(claim, exc, log)
        if not bodies:
            return self._skipped(claim, "the responder returned nothing to send", "skipped")
        outcome = self._send(sender, inbound, claim, bodies, log, remaining_ms)
        if outcome == "sent" and any(reply.handover for reply in replies):
            now_ms = int(self.clock() * 1000)
            self.ledger.pause(inbound, now_ms + self.handover_pause_s * 1000, now_ms)
            logger.info("handed over to a person; bot paused", extra={**log, "pause_s": self.handover_pause_s})
        return outcome

    def _prepare(
        self, sender: Sender, inbound: InboundMessage, claim: Claim, log: dict[str, Any]
    ) -> tuple[list[OutgoingMessage], list[dict[str, Any]]]:
        """The replies and the request bodies that send them; PolicyRefusedError/PermanentSendError if we may not."""
        try:
            replies = self.responder.respond(inbound)
            policy = decide(
                inbound.timestamp_ms, int(self.clock() * 1000), human_agent_enabled=self.human_agent_enabled
            )
            return replies, sender.plan(inbound, replies, policy)
        except (PolicyRefusedError, PermanentSendError):
            raise
        except Exception:
            # A responder bug or a bad configuration: nothing was sent, so a later delivery may try again.
            logger.exception("preparing the reply failed", extra=log)
            self.ledger.finish(claim, ClaimState.RETRYABLE, {"error_class": "PrepareError"})
            self.stats.inc("ReplyFailedTransient")
            raise

    def _send(
        self,
        sender: Sender,
        inbound: InboundMessage,
        claim: Claim,
        bodies: list[dict[str, Any]],
        log: dict[str, Any],
        remaining_ms: RemainingMs | None,
    ) -> str:
        for index in range(claim.parts_done, len(bodies)):
            try:
                result = self._post(sender, inbound, bodies[index], log, remaining_ms)
            except TransientSendError as exc:
                self._retry_later(
                    claim,
                    exc.details(),
                    {**log, **exc.details(), "part": index},
                    "reply failed transiently; the record will be retried",
                )
                raise RetryLaterError(exc.reason) from exc
            except PermanentSendError as exc:
                return self._failed(claim, exc, {**log, "part": index})
            except AmbiguousSendError as exc:
                return self._ambiguous(claim, exc.details(), {**log, "part": index})
            except MessengerError as exc:  # secret unavailable, configuration: raised before any request
                self._retry_later(
                    claim,
                    {"error_class": type(exc).__name__, "code": exc.code},
                    {**log, "error": exc.code},
                    "reply not sent; will retry",
                )
                raise RetryLaterError(exc.code) from exc
            except Exception as exc:
                logger.exception("unexpected failure while sending; not re-sent", extra=log)
                return self._ambiguous(claim, {"error_class": type(exc).__name__, "code": "unexpected"}, log)
            self._part_sent(sender, inbound, claim, bodies, index, result)
        self.stats.reply_latency(self.clock() * 1000 - inbound.timestamp_ms)
        self.ledger.finish(claim, ClaimState.SENT, {"parts_total": len(bodies), "attempts": claim.attempts})
        self.stats.inc("RepliesSent")
        logger.info("reply sent", extra={**log, "message_ids": claim.message_ids})
        return "sent"

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
                logger.info(
                    "transient provider error; retrying",
                    extra={**log, "attempt": attempt, "delay_s": round(delay, 3), "code": exc.code},
                )
                self.sleep(delay)
                continue
            self.stats.latency(result.latency_ms)
            return result

    def _skipped(self, claim: Claim, reason: str, outcome: str) -> str:
        self.ledger.finish(claim, ClaimState.SKIPPED, {"reason": reason})
        self.stats.inc("RecordsSkipped")
        return outcome

    def _retry_later(self, claim: Claim, details: dict[str, Any], log: dict[str, Any], message: str) -> None:
        self.ledger.finish(claim, ClaimState.RETRYABLE, details)
        self.stats.inc("ReplyFailedTransient")
        logger.warning(message, extra=log)

    def _failed(self, claim: Claim, exc: SendError | PolicyRefusedError, log: dict[str, Any]) -> str:
        details = (
            exc.details()
            if isinstance(exc, SendError)
            else {"error_class": type(exc).__name__, "code": exc.code, "reason": exc.reason}
        )
        self.ledger.finish(claim, ClaimState.FAILED, details)
        self.stats.inc("ReplyFailedPermanent")
        logger.warning("reply failed permanently; not retried", extra={**log, **details})
        return "failed"

    def _ambiguous(self, claim: Claim, details: dict[str, Any], log: dict[str, Any]) -> str:
        if self.ledger.echoed(claim):
            self.ledger.finish(claim, ClaimState.SENT, {**details, "reconciled_by": "echo"})
            self.stats.inc("RepliesSent")
            logger.info("unclear send confirmed by Meta's echo; recorded as sent", extra={**log, **details})
            return "sent"
        self.ledger.finish(claim, ClaimState.AMBIGUOUS, details)
        self.stats.inc("ReplyAmbiguous")
        logger.warning(
            "reply outcome unknown (may have been delivered); recorded, not re-sent", extra={**log, **details}
        )
        return "ambiguous"
