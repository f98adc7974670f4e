"""The conversation's reply turn: one invocation at a time answers a conversation (docs/design.md, "Ordering").

AWS orders a DynamoDB stream only per item, so two messages of one person (two items) may reach the reply
function in either order, side by side, or from two shards. A stream record is therefore only a doorbell:
the invocation that holds the conversation's turn (a lease on its `STATE` item) answers every pending
message in key order, which is the order the user sent them.

- The turn is a lease until the invocation's deadline (plus a clock margin): Lambda stops an invocation at
  its deadline, so a live holder never outlasts its lease, and the turn of one that crashed is free again at
  its deadline at the latest. A caller without a deadline (tools, tests) holds `LEASE_MS` at a time and
  renews it as it goes.
- A doorbell that finds the turn taken waits for it (the holder is usually done in well under a second)
  and then answers whatever is still pending, its own message included. So there is no moment in which a
  stored message has nobody coming for it: its own doorbell always either answers it or finds it answered.
  Out of time while waiting, it is retried (RetryLaterError), as after any transient failure.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from messenger.errors import RetryLaterError, TurnLostError
from messenger.observability import logger
from messenger.storage import Store, Turn, UnreadMessage

# Past the invocation's deadline by this much: clocks of two hosts differ a little.
CLOCK_MARGIN_MS = 2_000
# Without an invocation deadline (tools, tests): the lease, renewed before a step once less than
# RENEW_BELOW_MS of it is left; and how long such a caller waits for a taken turn.
LEASE_MS = 60_000
RENEW_BELOW_MS = 30_000
DEFAULT_REMAINING_MS = 60_000
# A waiting doorbell looks again after POLL_S, doubling up to MAX_POLL_S (with jitter, so records of one
# conversation do not look in step), with a cheap read; it tries the turn only when it looks free. It keeps
# RESERVE_MS for its own work after waiting.
POLL_S = 0.1
MAX_POLL_S = 2.0
RESERVE_MS = 12_000


@dataclass
class HeldTurn:
    """A turn we hold: its token, lease end and the conversation state read when it was taken."""

    conversation: str
    state: Turn
    until_ms: int
    deadline_ms: int | None  # the invocation's; None without one (the lease is then renewed as it goes)

    @property
    def token(self) -> str:
        return self.state.token


class TurnKeeper:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        lease_ms: int = LEASE_MS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.sleep = sleep
        self.lease_ms = lease_ms

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _lease_end(self, now_ms: int, deadline_ms: int | None) -> int:
        return deadline_ms + CLOCK_MARGIN_MS if deadline_ms is not None else now_ms + self.lease_ms

    def take(self, conversation: str, remaining_ms: int | None) -> HeldTurn:
        """The conversation's turn, once its holder lets go or its lease runs out. RetryLaterError if that
        does not happen while this invocation still has time for its own work."""
        token = uuid.uuid4().hex
        now = self._now_ms()
        deadline = now + remaining_ms if remaining_ms is not None else None
        wait_budget_end = deadline if deadline is not None else now + DEFAULT_REMAINING_MS
        while True:
            until = self._lease_end(now, deadline)
            taken = self.store.take_turn(conversation, token, now_ms=now, until_ms=until)
            if isinstance(taken, Turn):
                return HeldTurn(conversation, taken, until, deadline)
            now = self._wait_until_free(conversation, wait_budget_end)

    def _wait_until_free(self, conversation: str, deadline_ms: int) -> int:
        """Sleep until the turn looks free (ended, or its lease ran out); the time then. RetryLaterError when
        this invocation would be left with less than RESERVE_MS."""
        pause = POLL_S
        while True:
            now = self._now_ms()
            if deadline_ms - now < RESERVE_MS:
                raise RetryLaterError("another invocation kept this conversation's turn; the record will be retried")
            self.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, MAX_POLL_S)
            now = self._now_ms()
            if self.store.turn_held_until(conversation) < now:
                return now

    def end(self, turn: HeldTurn, answered_through: str, unread: list[UnreadMessage]) -> dict[str, int]:
        """Save the progress and let go; the conversation's status watermarks as they are now. A turn lost
        meanwhile is not an error: its new holder goes on."""
        try:
            return self.store.end_turn(turn.conversation, turn.token, answered_through=answered_through, unread=unread)
        except TurnLostError:
            logger.warning(
                "the conversation's turn was taken over before it ended", extra={"conversation_id": turn.conversation}
            )
            return {}

    def keep(self, turn: HeldTurn) -> None:
        """Before each message and send: TurnLostError if our lease ran out; a lease without an invocation
        deadline is renewed once less than RENEW_BELOW_MS is left. (One that reaches the deadline needs no
        renewal: the invocation cannot outlive it, and a send the deadline cuts off is found `claimed` by the
        next holder, so it is confirmed or given up, never sent twice.)"""
        now = self._now_ms()
        if now >= turn.until_ms:
            # Our lease ran out (clocks, or a caller past its deadline): another may hold the turn now.
            raise TurnLostError("this invocation's turn ran out")
        if turn.deadline_ms is not None or turn.until_ms - now >= RENEW_BELOW_MS:
            return
        until = self._lease_end(now, None)
        self.store.renew_turn(turn.conversation, turn.token, until_ms=until)
        turn.until_ms = until
