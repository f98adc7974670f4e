"""Store what a verified webhook delivered: every event once, statuses applied before the event is kept.

A batch is stored in two steps. First each conversation's status, handover and echo effects run in the
batch's order (conversations side by side); they are idempotent, so they come before the events' puts: if a
put then fails, the redelivery applies them again instead of finding a stored duplicate and skipping them.
Then the events' conditional puts run on a small thread pool, conversations side by side and each
conversation's in the batch's order, so the stream keeps the user's order (a 1,000-event Meta batch in a
few seconds, docs/design.md "Big batches"). Conditional puts cannot be batched (BatchWriteItem has no conditions), and
the condition is what recognises a redelivered event.

A transient failure anywhere (throttling, timeouts, 5xx) raises after the pool is done: the handler answers
5xx, the provider redelivers the whole body, the events already stored are recognised as duplicates and the
rest are written then. A permanent rejection (DynamoDB refuses an item as it is, even bounded) is logged,
counted and skipped, so one unstorable event never costs its neighbours a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit

from messenger import handover
from messenger.errors import StorageError, StorageRejectedError
from messenger.events import STATUS_RANK, Event, Kind
from messenger.observability import logger, metrics
from messenger.storage import Store

# Threads storing one batch (and the webhook's DynamoDB connection pool): enough to hide a PutItem's round
# trip, few enough for a 1 GB Lambda's CPU share.
INGEST_WORKERS = 16

_EFFECT_KINDS = frozenset({Kind.STATUS, Kind.DELIVERY, Kind.READ, Kind.ECHO, Kind.HANDOVER})
# The rank of the status a reply is recorded with when the provider accepts it (Vonage `submitted`, Meta
# `sent`): a callback at or below it only repeats what the reply function wrote.
_ACCEPTED_RANK = STATUS_RANK["submitted"]


@dataclass(slots=True)
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    statuses_applied: int = 0
    skipped: int = 0


def ingest(store: Store, events: list[Event], pause_seconds: int = 3600, workers: int = INGEST_WORKERS) -> IngestResult:
    result = IngestResult()
    effects: dict[str, list[Event]] = {}
    conversations: dict[str, list[Event]] = {}
    for event in events:
        conversations.setdefault(event.conversation_id, []).append(event)
        if event.kind in _EFFECT_KINDS:
            effects.setdefault(event.conversation_id, []).append(event)
    applied = _side_by_side(lambda lane: _effects_in_order(store, lane, pause_seconds), list(effects.values()), workers)
    result.statuses_applied = sum(n for lane in applied for n in lane if isinstance(n, int))
    _raise_first([n for lane in applied for n in lane], events, result)
    # One conversation's puts in the batch's order: the stream (and so the replies) keeps the user's order.
    outcomes = [
        o
        for lane in _side_by_side(lambda lane: _put_in_order(store, lane), list(conversations.values()), workers)
        for o in lane
    ]
    for outcome in outcomes:
        if outcome is True:
            result.stored += 1
        elif outcome is False:
            result.duplicates += 1
        elif outcome is None:
            result.skipped += 1
    _raise_first(outcomes, events, result)
    if result.skipped:
        metrics.add_metric(name="EventsSkipped", unit=MetricUnit.Count, value=result.skipped)
    return result


def _side_by_side[T, R](work: Callable[[T], R], lanes: list[T], workers: int) -> list[R]:
    """`work` on every lane, in order of the lanes: inline for one (the usual POST), else on a thread pool."""
    if len(lanes) <= 1:
        return [work(lane) for lane in lanes]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(lanes)))) as pool:
        return list(pool.map(work, lanes))


def _effects_in_order(store: Store, events: list[Event], pause_seconds: int) -> list[int | StorageError]:
    """One conversation's effects in order; a transient failure ends the lane (the redelivery applies it all)."""
    applied: list[int | StorageError] = []
    for event in events:
        try:
            applied.append(_effects(store, event, pause_seconds))
        except StorageError as exc:  # transient (a permanent rejection is handled by _effects)
            applied.append(exc)
            break
    return applied


def _raise_first(outcomes: Sequence[object], events: list[Event], result: IngestResult) -> None:
    failures = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, StorageError)]
    if failures:
        logger.error(
            "storing a batch failed part-way; the provider will redeliver it",
            extra={
                "failed": len(failures),
                "batch_size": len(events),
                "stored_before_failure": result.stored,
                "provider": events[0].provider.value,
            },
        )
        raise failures[0][1]


def _effects(store: Store, event: Event, pause_seconds: int) -> int:
    """The event's idempotent effects; a permanent rejection of one is logged and skipped."""
    try:
        applied = _apply_statuses(store, event)
        handover.record(store, event, pause_seconds)
        _reconcile_echo(store, event)
        return applied
    except StorageRejectedError:
        logger.warning(
            "an event's status or handover effect cannot be stored; skipped",
            extra={"provider": event.provider.value, "kind": event.kind.value},
        )
        metrics.add_metric(name="EffectsSkipped", unit=MetricUnit.Count, value=1)
        return 0


def _put_in_order(store: Store, events: list[Event]) -> list[bool | StorageError | None]:
    """One conversation's puts, in order; after a transient failure the rest wait for the redelivery, so a
    later message is never stored (and answered) before an earlier one."""
    outcomes: list[bool | StorageError | None] = []
    for event in events:
        try:
            outcomes.append(_put(store, event))
        except StorageError as exc:  # transient (a permanent rejection is handled by _put)
            outcomes.append(exc)
            break
    return outcomes


def _put(store: Store, event: Event) -> bool | None:
    """True stored, False a duplicate, None skipped: no form of it can be stored (permanent)."""
    try:
        return store.store_event(event)
    except StorageRejectedError:
        logger.error(
            "event cannot be stored in any form; skipped and counted",
            extra={"provider": event.provider.value, "kind": event.kind.value, "event_id": event.event_id[:128]},
        )
        return None


def _apply_statuses(store: Store, event: Event) -> int:
    if event.kind is Kind.STATUS and event.status:
        if _already_recorded(store, event.conversation_id, event.mids[0], event.status):
            return 0
        applied = store.apply_status(
            event.conversation_id, event.mids[0], event.status, at_ms=event.timestamp_ms, error=event.error
        )
        return int(applied)
    if event.kind not in (Kind.DELIVERY, Kind.READ):
        return 0
    status = "delivered" if event.kind is Kind.DELIVERY else "read"
    ids = event.mids
    watermark = event.watermark_ms if not ids else None
    if watermark is not None:
        # Meta may send only a watermark: everything sent up to then has reached that status. The unread
        # messages it newly covers come from the conversation state, so the cost follows what it marks.
        ids = store.outbound_before(event.conversation_id, watermark, below=status)
    moved = sum(store.apply_status(event.conversation_id, mid, status, at_ms=event.timestamp_ms) for mid in ids)
    if watermark is not None and ids:
        store.advance_watermark(event.conversation_id, status, watermark)
    return moved


def _already_recorded(store: Store, conversation: str, message_id: str, status: str) -> bool:
    """True when a `submitted` callback finds the message already recorded at that status or beyond.

    The reply function records each accepted message as `submitted`, so the usual `submitted` callback
    would be a conditional write that fails: billed a write unit for nothing. One read (a fifth of a write's
    price) is enough to know. A callback that comes first still creates the message, as before.
    """
    rank = STATUS_RANK.get(status)
    if rank is None or rank > _ACCEPTED_RANK:
        return False
    item = store.message(conversation, message_id)
    return item is not None and int(item.get("status_rank", 0)) >= rank


def _reconcile_echo(store: Store, event: Event) -> None:
    """An echo of our own send (or a Vonage status carrying our `client_ref`) proves the provider took it:
    record the whole outbound message, settle an unconfirmed claim.

    The message id is also kept on the claim, so a reply function that only later decides the send was
    unclear (its request timed out after the echo came) finds the proof there and counts it as sent.
    Usually the reply function has already settled the claim as sent with this id, and recorded the
    message: one read of the claim then saves the three writes (outbound, echo mid, settle condition).
    """
    outbound = handover.echoed_outbound(event)
    if outbound is None:
        return
    claim = store.reply_state(event.conversation_id, outbound.in_reply_to)
    if claim is not None and claim.state == "sent" and outbound.message_id in claim.message_ids:
        return
    store.record_outbound(outbound)
    if store.reconcile_echo(event.conversation_id, outbound.in_reply_to, outbound.message_id, event.timestamp_ms):
        logger.info("unclear reply confirmed by the provider", extra={"event_id": outbound.in_reply_to})
