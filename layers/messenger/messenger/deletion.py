"""Meta's data-deletion callback: delete a user's items and keep a status record under a confirmation code.

Meta sends the app-scoped user id of Facebook Login. Messenger events carry page-scoped ids (PSIDs);
for a Messenger-only app they are the ids we store, so we delete the conversations of that id on every
Page we hold a token for. docs/messenger-coverage.md explains the limits of this mapping.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from messenger.models import Provider, conversation_id
from messenger.storage import EventStore, to_item


def deletion_key(code: str) -> str:
    return f"DEL#{code}"


def new_confirmation_code() -> str:
    return secrets.token_hex(10)


def delete_user_data(store: EventStore, user_id: str, page_ids: list[str], code: str) -> int:
    """Record the request, delete the user's conversations, mark it completed. Returns items deleted."""
    now = int(time.time())
    record = {
        "pk": deletion_key(code),
        "record_type": "deletion",
        "status": "in_progress",
        # Only a hash of the id is kept: the record must not itself retain the user's data.
        "user_hash": hashlib.sha256(user_id.encode()).hexdigest(),
        "requested_at": now,
        "expires_at": now + store.retention_s,
    }
    store.put_new(to_item(record))
    deleted = sum(
        store.delete_conversation(conversation_id(Provider.META, page_id, user_id)) for page_id in page_ids
    )
    store.update(
        deletion_key(code),
        "SET #status = :done, deleted_items = :n, completed_at = :t",
        None,
        {"#status": "status"},
        {":done": {"S": "completed"}, ":n": {"N": str(deleted)}, ":t": {"N": str(int(time.time()))}},
    )
    return deleted


def deletion_status(store: EventStore, code: str) -> dict[str, Any] | None:
    item = store.get(deletion_key(code))
    if item is None:
        return None
    return {
        "confirmation_code": code,
        "status": item.get("status"),
        "deleted_items": item.get("deleted_items", 0),
        "requested_at": item.get("requested_at"),
        "completed_at": item.get("completed_at"),
    }
