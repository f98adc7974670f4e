"""Optional first-name look-up for personalised replies, cached in the table with a TTL.

A failure (timeout, permission, unknown user) only means "no name": it is logged and never blocks
or delays a reply beyond the look-up's own short timeout. Misses are cached too, so a user whose
profile cannot be read costs one request per cache period, not one per message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from messenger.messages import InboundMessage
from messenger.observability import logger
from messenger.storage import EventStore, conversation_sort

PROFILE_TTL_S = 7 * 86400


def profile_key(inbound: InboundMessage) -> str:
    return f"PROFILE#{inbound.conversation_id}"


class ProfileCache:
    def __init__(self, store: EventStore, ttl_s: int = PROFILE_TTL_S, clock: Callable[[], float] = time.time):
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock

    def first_name(self, inbound: InboundMessage, fetch: Callable[[InboundMessage], str | None]) -> str | None:
        log = {"conversation_id": inbound.conversation_id}
        try:
            item = self.store.get(profile_key(inbound))
            now = int(self.clock())
            if item and int(item.get("profile_expires_at", 0)) > now:
                return item.get("first_name") or None
            name = fetch(inbound)
            self._save(inbound, name, now)
            return name
        except Exception as exc:  # noqa: BLE001 - a profile is a nicety: never let it block the reply
            logger.info("profile look-up failed; replying without a name",
                        extra={**log, "error_class": type(exc).__name__})
            return None

    def _save(self, inbound: InboundMessage, name: str | None, now: int) -> None:
        values = {
            ":rt": {"S": "profile"},
            ":c": {"S": inbound.conversation_id},
            ":sort": {"S": conversation_sort(0, profile_key(inbound))},
            ":pexp": {"N": str(now + self.ttl_s)},
            ":exp": {"N": str(now + self.ttl_s)},
        }
        update = ("SET record_type = :rt, conversation_id = :c, conversation_sort = :sort, "
                  "profile_expires_at = :pexp, expires_at = :exp")
        if name:
            update += ", first_name = :name"
            values[":name"] = {"S": name}
        else:
            update += " REMOVE first_name"
        self.store.update(profile_key(inbound), update, None, {}, values)
