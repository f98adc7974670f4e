"""The reply pipeline: for each new inbound message, claim -> respond -> check policy -> send -> record.

`ConversationOrderedProcessor` is a Powertools `BatchProcessor` for DynamoDB Streams whose `process()`
groups the batch by conversation: each conversation runs in order on one worker thread, different
conversations run concurrently, and after a failure the conversation's later records are reported
failed without being attempted. The partial-batch response (`batchItemFailures` by SequenceNumber) is
built by Powertools as usual.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from messenger.config import Settings, get_settings
from messenger.delivery import (
    AmbiguousSendError,
    PermanentSendError,
    RetryPolicy,
    Sender,
    SendError,
    SendResult,
    TransientSendError,
)
from messenger.errors import MessengerError
from messenger.messages import InboundMessage
from messenger.models import Kind
from messenger.observability import logger, metrics, tracer
from messenger.outbox import Claim, ClaimState, ReplyLedger, Settled
from messenger.policy import PolicyRefusedError, decide
from messenger.profiles import ProfileCache
from messenger.providers.meta.send import MetaSendClient, MetaSender
from messenger.providers.vonage.send import VonageSendClient, VonageSender
from messenger.responder import Responder, load_responder
from messenger.secrets import MetaSecret, VonageSecret, get_meta_secret, get_vonage_secret
from messenger.storage import DynamoStore, dynamodb_client, new_inbound, record_conversation

DEFAULT_WORKERS = 32
ANSWERED_KINDS = frozenset({Kind.MESSAGE.value, Kind.POSTBACK.value})


class RetryLaterError(MessengerError):
    """The record is reported in batchItemFailures so the event source mapping delivers it again."""

    code = "retry_later"


class NotAttemptedError(RetryLaterError):
    """An earlier record of the same conversation failed (or time ran out): kept for after it."""

    code = "not_attempted"


# -- stream records ------------------------------------------------------------------------------


def inbound_from_record(record: dict[str, Any]) -> InboundMessage | None:
    """The inbound message of an INSERT of a record_type=inbound item; None for anything else."""
    try:
        item = new_inbound(record)
        if item is None:
            return None
        message = InboundMessage.from_item(item)
    except (KeyError, ValueError, TypeError):
        logger.warning("inbound record without the fields a reply needs", extra={"event_id": record.get("eventID")})
        return None
    return message if message.kind in ANSWERED_KINDS else None


def conversation_key(record: dict[str, Any]) -> str:
    conversation = record_conversation(record)
    return f"c:{conversation}" if conversation else f"r:{record.get('eventID')}:{id(record)}"


# -- metrics (collected by the workers, emitted once by the main thread) -------------------------


class ReplyStats:
    MAX_LATENCIES = 100

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.latencies: list[float] = []
        self.end_to_end: list[float] = []  # ReplyLatency: the user's message timestamp to the provider's accept

    def inc(self, name: str, value: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + value

    def latency(self, ms: float) -> None:
        with self._lock:
            if len(self.latencies) < self.MAX_LATENCIES:
                self.latencies.append(ms)

    def reply_latency(self, ms: float) -> None:
        with self._lock:
            if len(self.end_to_end) < self.MAX_LATENCIES:
                self.end_to_end.append(max(0.0, ms))

    def flush(self) -> None:
        with self._lock:
            counts, latencies, end_to_end = self.counts, self.latencies, self.end_to_end
            self.counts, self.latencies, self.end_to_end = {}, [], []
        for name, value in counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        for ms in latencies:
            metrics.add_metric(name="ProviderLatency", unit=MetricUnit.Milliseconds, value=round(ms, 1))
        for ms in end_to_end:
            metrics.add_metric(name="ReplyLatency", unit=MetricUnit.Milliseconds, value=round(ms, 1))


STATS = ReplyStats()


# -- one record ------------------------------------------------------------------------------------


@dataclass
class ReplyPipeline:
    ledger: ReplyLedger
    responder: Responder
    senders: Mapping[str, Sender]
    human_agent_enabled: bool = False
    handover_pause_s: int = 3600
    profiles: ProfileCache | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    stats: ReplyStats = field(default_factory=lambda: STATS)

    def handle(self, record: dict[str, Any], remaining_ms: Callable[[], int] | None = None) -> str:
        """Answer one stream record. Returns the outcome; raises RetryLaterError (or a storage error) to retry."""
        inbound = inbound_from_record(record)
        sender = self.senders.get(inbound.provider) if inbound else None
        if inbound is None or sender is None:
            self.stats.inc("RecordsSkipped")
            return "ignored"
        log = {"conversation_id": inbound.conversation_id, "event_id": inbound.event_id,
               "provider": inbound.provider}
        claim = self.ledger.claim(inbound)
        if isinstance(claim, Settled):
            self.stats.inc("RecordsSkipped")
            logger.info("reply already settled; nothing sent", extra={**log, "state": claim.state})
            return f"already_{claim.state}"
        if self.ledger.paused_until(inbound) > self.clock() * 1000:
            self.ledger.finish(claim, ClaimState.SKIPPED, {"reason": "bot paused: a person has this conversation"})
            self.stats.inc("RecordsSkipped")
            logger.info("bot paused for this conversation; not answering", extra=log)
            return "paused"
        lookup = getattr(sender, "first_name", None)
        if self.profiles is not None and lookup is not None:
            inbound = replace(inbound, first_name=self.profiles.first_name(inbound, lookup))
        try:
            replies = self.responder.respond(inbound)
            policy = decide(inbound.timestamp_ms, int(self.clock() * 1000),
                            human_agent_enabled=self.human_agent_enabled)
            bodies = sender.plan(inbound, replies, policy)
        except (PolicyRefusedError, PermanentSendError) as exc:
            return self._failed(claim, exc, log)
        except Exception:
            # A responder bug or a bad configuration: nothing was sent, so a later delivery may try again.
            logger.exception("preparing the reply failed", extra=log)
            self.ledger.finish(claim, ClaimState.RETRYABLE, {"error_class": "PrepareError"})
            self.stats.inc("ReplyFailedTransient")
            raise
        if not bodies:
            self.ledger.finish(claim, ClaimState.SKIPPED, {"reason": "the responder returned nothing to send"})
            self.stats.inc("RecordsSkipped")
            return "skipped"
        outcome = self._send(sender, inbound, claim, bodies, log, remaining_ms)
        if outcome == "sent" and any(reply.handover for reply in replies):
            now_ms = int(self.clock() * 1000)
            self.ledger.pause(inbound, now_ms + self.handover_pause_s * 1000, now_ms)
            logger.info("handed over to a person; bot paused", extra={**log, "pause_s": self.handover_pause_s})
        return outcome

    def _send(self, sender: Sender, inbound: InboundMessage, claim: Claim, bodies: list[dict],
              log: dict[str, Any], remaining_ms: Callable[[], int] | None) -> str:
        for index in range(claim.parts_done, len(bodies)):
            try:
                result = self._post(sender, inbound, bodies[index], log, remaining_ms)
            except TransientSendError as exc:
                self.ledger.finish(claim, ClaimState.RETRYABLE, exc.details())
                self.stats.inc("ReplyFailedTransient")
                logger.warning("reply failed transiently; the record will be retried",
                               extra={**log, **exc.details(), "part": index})
                raise RetryLaterError(exc.reason) from exc
            except PermanentSendError as exc:
                return self._failed(claim, exc, {**log, "part": index})
            except AmbiguousSendError as exc:
                return self._ambiguous(claim, exc.details(), {**log, "part": index})
            except MessengerError as exc:  # secret unavailable, configuration: raised before any request
                self.ledger.finish(claim, ClaimState.RETRYABLE, {"error_class": type(exc).__name__,
                                                                  "code": exc.code})
                self.stats.inc("ReplyFailedTransient")
                logger.warning("reply not sent; will retry", extra={**log, "error": exc.code})
                raise RetryLaterError(exc.code) from exc
            except Exception as exc:
                logger.exception("unexpected failure while sending; not re-sent", extra=log)
                return self._ambiguous(claim, {"error_class": type(exc).__name__, "code": "unexpected"}, log)
            if result.message_id:
                self.ledger.record_outbound(inbound, result.message_id, status=getattr(sender, "initial_status",
                                            "sent"), text=_body_text(bodies[index]), part_index=index)
            if index < len(bodies) - 1:
                self.ledger.part_sent(claim, result.message_id)
            else:
                claim.parts_done += 1
                if result.message_id:
                    claim.message_ids.append(result.message_id)
        self.stats.reply_latency(self.clock() * 1000 - inbound.timestamp_ms)
        self.ledger.finish(claim, ClaimState.SENT, {"parts_total": len(bodies), "attempts": claim.attempts})
        self.stats.inc("RepliesSent")
        logger.info("reply sent", extra={**log, "message_ids": claim.message_ids})
        return "sent"

    def _post(self, sender: Sender, inbound: InboundMessage, body: dict, log: dict[str, Any],
              remaining_ms: Callable[[], int] | None) -> SendResult:
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
                logger.info("transient provider error; retrying", extra={**log, "attempt": attempt,
                                                                          "delay_s": round(delay, 3),
                                                                          "code": exc.code})
                self.sleep(delay)
                continue
            self.stats.latency(result.latency_ms)
            return result

    def _failed(self, claim: Claim, exc: SendError | PolicyRefusedError, log: dict[str, Any]) -> str:
        details = exc.details() if isinstance(exc, SendError) else {
            "error_class": type(exc).__name__, "code": exc.code, "reason": exc.reason}
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
        logger.warning("reply outcome unknown (may have been delivered); recorded, not re-sent",
                       extra={**log, **details})
        return "ambiguous"


def _body_text(body: dict[str, Any]) -> str | None:
    text = body.get("text") or (body.get("message") or {}).get("text")
    return str(text) if text else None


# -- the batch ---------------------------------------------------------------------------------------


class ConversationOrderedProcessor(BatchProcessor):
    """BatchProcessor(DynamoDBStreams) whose records run per conversation, conversations in parallel."""

    def __init__(self, *, max_workers: int = DEFAULT_WORKERS, min_remaining_ms: int = 3_000,
                 prepare: Callable[[], Any] | None = None, finish: Callable[[], Any] | None = STATS.flush) -> None:
        # A batch that failed entirely is still answered with its batchItemFailures (not an exception),
        # so Lambda retries exactly those records instead of bisecting a batch that had no bad record.
        super().__init__(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
        self.max_workers = max_workers
        self.min_remaining_ms = min_remaining_ms
        self.prepare = prepare
        self.finish = finish

    def process(self) -> list[tuple]:
        if self.prepare is not None:
            self.prepare()  # builds the pipeline: a bad configuration fails the invocation, not each record
        groups: OrderedDict[str, list[int]] = OrderedDict()
        for index, record in enumerate(self.records):
            groups.setdefault(conversation_key(record), []).append(index)
        outcomes: list[tuple[bool, Any]] = [(False, None)] * len(self.records)
        entity = _trace_entity()
        try:
            workers = max(1, min(self.max_workers, len(groups)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reply") as pool:
                futures = [pool.submit(self._run_group, indexes, entity) for indexes in groups.values()]
                for future in futures:
                    for index, outcome in future.result():
                        outcomes[index] = outcome
        finally:
            if self.finish is not None:
                self.finish()
        results = []
        for record, (ok, value) in zip(self.records, outcomes, strict=True):
            if ok:
                results.append(self.success_handler(record=record, result=value))
            else:
                results.append(self.failure_handler(record=DynamoDBRecord(record), exception=value))
        return results

    def _run_group(self, indexes: list[int], entity: Any) -> list[tuple[int, tuple[bool, Any]]]:
        _set_trace_entity(entity)
        done: list[tuple[int, tuple[bool, Any]]] = []
        blocked: str | None = None
        for index in indexes:
            record = self.records[index]
            if blocked is None and self._remaining_ms() < self.min_remaining_ms:
                blocked = "too little time left in the invocation"
            if blocked is not None:
                done.append((index, (False, _exc_info(NotAttemptedError(blocked)))))
                continue
            try:
                data = DynamoDBRecord(record)
                if self._handler_accepts_lambda_context:
                    result = self.handler(record=data, lambda_context=self.lambda_context)
                else:
                    result = self.handler(record=data)
                done.append((index, (True, result)))
            except Exception:
                done.append((index, (False, sys.exc_info())))
                blocked = "an earlier record of this conversation failed"
        return done

    def _remaining_ms(self) -> int:
        context = getattr(self, "lambda_context", None)
        getter = getattr(context, "get_remaining_time_in_millis", None)
        return int(getter()) if getter else sys.maxsize


def _exc_info(exc: BaseException) -> tuple:
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


def _trace_entity() -> Any:
    if tracer.disabled:
        return None
    try:
        return tracer.provider.get_trace_entity()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - tracing must never break replying
        return None


def _set_trace_entity(entity: Any) -> None:
    if entity is None:
        return
    try:
        tracer.provider.set_trace_entity(entity)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return


# -- wiring ------------------------------------------------------------------------------------------


class _LockedSecret:
    """Serialise secret reads so a cold start with many workers fetches each secret once."""

    def __init__(self, fetch: Callable[[], Any]) -> None:
        self.fetch = fetch
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            return self.fetch()


def build_pipeline(settings: Settings, *, workers: int = DEFAULT_WORKERS, **options: Any) -> ReplyPipeline:
    client = dynamodb_client(max_pool_connections=workers + 4)
    store = DynamoStore(settings.events_table, client=client, retention_days=settings.retention_days)

    def meta_secret() -> MetaSecret:
        return get_meta_secret(settings.require_meta_secret_id(), settings.secret_max_age_seconds)

    def vonage_secret() -> VonageSecret:
        return get_vonage_secret(settings.require_vonage_secret_id(), settings.secret_max_age_seconds)

    senders: dict[str, Sender] = {
        "meta": MetaSender(MetaSendClient(settings.graph_api_base, settings.graph_api_version, pool_size=workers),
                           _LockedSecret(meta_secret)),
        "vonage": VonageSender(VonageSendClient(settings.vonage_api_base, pool_size=workers),
                               _LockedSecret(vonage_secret)),
    }
    return ReplyPipeline(
        ledger=ReplyLedger(store),
        responder=load_responder(settings.responder_rules_file, settings.responder_class),
        senders=senders,
        human_agent_enabled=settings.human_agent_tag_enabled,
        handover_pause_s=settings.handover_pause_seconds,
        profiles=ProfileCache(store) if settings.profile_lookup else None,
        **options,
    )


@lru_cache(maxsize=4)
def pipeline_for(settings: Settings) -> ReplyPipeline:
    """One pipeline (pooled HTTP sessions, DynamoDB client, JWT cache) per warm container."""
    return build_pipeline(settings)


def current_pipeline() -> ReplyPipeline:
    return pipeline_for(get_settings())


def record_handler(record: DynamoDBRecord, lambda_context: Any = None) -> str:
    getter = getattr(lambda_context, "get_remaining_time_in_millis", None)
    return current_pipeline().handle(record.raw_event, getter)

