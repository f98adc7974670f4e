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
from messenger.storage import Store

PROFILE_TTL_S = 7 * 86400


class ProfileCache:
    def __init__(self, store: Store, ttl_s: int = PROFILE_TTL_S, clock: Callable[[], float] = time.time):
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock

    def first_name(self, inbound: InboundMessage, fetch: Callable[[InboundMessage], str | None]) -> str | None:
        log = {"conversation_id": inbound.conversation_id}
        try:
            cached = self.store.cached_profile(inbound.conversation_id)
            now = int(self.clock())
            if cached is not None and cached.expires_at > now:
                return cached.first_name
            name = fetch(inbound)
            self.store.cache_profile(inbound.conversation_id, name, now + self.ttl_s)
            return name
        except Exception as exc:  # noqa: BLE001 - a profile is a nicety: never let it block the reply
            logger.debug(
                "profile look-up failed; replying without a name", extra={**log, "error_class": type(exc).__name__}
            )
            return None
