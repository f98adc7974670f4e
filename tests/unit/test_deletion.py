"""Data deletion on the in-memory store: every item of the user's conversations, on every Page, and nothing else."""

from __future__ import annotations

import hashlib

from devkit.memory_store import MemoryStore
from messenger.events import Event, Kind, Provider
from messenger.inbound import deletion


def message(event_id: str, user: str, page: str = "p1", provider: Provider = Provider.META) -> Event:
    return Event(
        provider=provider,
        event_id=event_id,
        kind=Kind.MESSAGE,
        page_id=page,
        user_id=user,
        timestamp_ms=1,
        text="hello",
    )


def test_the_users_conversations_are_deleted_on_every_page_and_the_request_recorded():
    store = MemoryStore()
    for event in (
        message("a1", "u"),
        message("a2", "u", page="p2"),
        message("b1", "other"),
        message("v1", "u", provider=Provider.VONAGE),
    ):
        store.store_event(event)
    store.set_pause("meta#p1#u", 10, 1, "handover")
    deleted = deletion.delete_user_data(store, "u", ["p1", "p2"], "code1")
    assert deleted == 3
    kept = sorted(item["event_id"] for (pk, _), item in store.items.items() if not pk.startswith("DEL#"))
    assert kept == ["b1", "v1"]
    status = deletion.deletion_status(store, "code1")
    assert status is not None and status["status"] == "completed" and status["deleted_items"] == 3
    record = store.deletion("code1")
    assert record["user_hash"] == hashlib.sha256(b"u").hexdigest() and "u" not in record.values()
    assert deletion.deletion_status(store, "unknown") is None
