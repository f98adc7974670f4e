"""Store what a verified webhook delivered: every event once, statuses applied before the event is kept.

A batch is written event by event with conditional puts. If one write fails, the exception reaches the
handler, which answers 5xx: the provider redelivers the whole body, the events already stored are
recognised as duplicates, and the rest are written then. Nothing is lost and nothing is doubled.
"""

from __future__ import annotations

from dataclasses import dataclass

from messenger import handover
from messenger.errors import StorageError
from messenger.models import Event, Kind
from messenger.observability import logger
from messenger.storage import Store


@dataclass(slots=True)
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    statuses_applied: int = 0


def ingest(store: Store, events: list[Event], pause_seconds: int = 3600) -> IngestResult:
    result = IngestResult()
    for index, event in enumerate(events):
        try:
            # Status and handover effects are idempotent, so they run first: if the put then fails, the redelivery
            # applies them again instead of finding a stored duplicate and skipping them.
            result.statuses_applied += _apply_statuses(store, event)
            handover.record(store, event, pause_seconds)
            _reconcile_echo(store, event)
            if store.store_event(event):
                result.stored += 1
            else:
                result.duplicates += 1
        except StorageError:
            logger.error(
                "storing a batch failed part-way; the provider will redeliver it",
                extra={"failed_index": index, "batch_size": len(events), "stored_before_failure": result.stored,
                       "provider": event.provider.value, "event_id": event.event_id},
            )
            raise
    return result


def _apply_statuses(store: Store, event: Event) -> int:
    if event.kind is Kind.STATUS and event.status:
        applied = store.apply_status(
            event.conversation_id, event.mids[0], event.status, at_ms=event.timestamp_ms, error=event.error
        )
        return int(applied)
    if event.kind not in (Kind.DELIVERY, Kind.READ):
        return 0
    status = "delivered" if event.kind is Kind.DELIVERY else "read"
    ids = event.mids
    if not ids and event.watermark_ms is not None:
        # Meta may send only a watermark: everything sent up to then has reached that status.
        ids = store.outbound_before(event.conversation_id, event.watermark_ms, below=status)
    return sum(store.apply_status(event.conversation_id, mid, status, at_ms=event.timestamp_ms) for mid in ids)


def _reconcile_echo(store: Store, event: Event) -> None:
    """An echo of our own send proves it was delivered to Meta: settle an ambiguous reply claim as sent.

    The echo's mid is also kept on the claim, so a reply function that only later decides the send was
    ambiguous (its request timed out after the echo came) finds the proof there.
    """
    inbound_id = handover.answered_event_id(event.metadata) if event.kind is Kind.ECHO else None
    if inbound_id is None:
        return
    if store.reconcile_echo(event.conversation_id, inbound_id, event.event_id):
        logger.info("ambiguous reply confirmed by Meta's echo", extra={"event_id": inbound_id})
