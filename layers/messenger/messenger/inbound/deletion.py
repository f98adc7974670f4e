"""Meta's data-deletion callback: delete a user's items and keep a status record under a confirmation code.

Meta sends the app-scoped user id of Facebook Login. Messenger events carry page-scoped ids (PSIDs);
for a Messenger-only app they are the ids we store, so we delete the conversations of that id on every
Page we hold a token for. docs/messenger-coverage.md explains the limits of this mapping.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from messenger.events import Provider, conversation_id
from messenger.storage import Store


def new_confirmation_code() -> str:
    return secrets.token_hex(10)


def delete_user_data(store: Store, user_id: str, page_ids: list[str], code: str) -> int:
    """Record the request, delete the user's conversations, mark it completed. Returns items deleted."""
    # Only a hash of the id is kept: the record must not itself retain the user's data.
    user_hash = hashlib.sha256(user_id.encode()).hexdigest()
    conversations = [conversation_id(Provider.META, page_id, user_id) for page_id in page_ids]
    return store.delete_user_data(code, user_hash, conversations)


def deletion_status(store: Store, code: str) -> dict[str, Any] | None:
    item = store.deletion(code)
    if item is None:
        return None
    return {
        "confirmation_code": code,
        "status": item.get("status"),
        "deleted_items": item.get("deleted_items", 0),
        "requested_at": item.get("requested_at"),
        "completed_at": item.get("completed_at"),
    }
