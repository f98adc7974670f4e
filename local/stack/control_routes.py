"""The local stack's control API under `/_local/` (served by the HTTP API beside the template's routes):
`/_local/health` (200 once every part is up, else 503), the poller's state, stop, start and restart (a cold start
of the reply function), and the on-failure queue's messages."""

from __future__ import annotations

from typing import Any, Protocol

from local.control import ANY, Answer, Request, Routes
from local.stack.reply_side import ReplySide


class Controlled(Protocol):
    """What the routes act on (the LocalStack)."""

    reply: ReplySide

    def health(self) -> tuple[int, dict[str, Any]]: ...


def _restart_poller(stack: Controlled, _request: Request) -> Answer:
    started = stack.reply.start(reload=True)
    return (200 if started else 409), stack.reply.state()


def _stop_poller(stack: Controlled, _request: Request) -> Answer:
    stack.reply.stop()
    return 200, stack.reply.state()


def _start_poller(stack: Controlled, _request: Request) -> Answer:
    started = stack.reply.poller is not None or stack.reply.start(reload=False)
    return (200 if started else 409), stack.reply.state()


CONTROL = Routes[Controlled](
    {
        (ANY, "/_local/health"): lambda stack, _request: stack.health(),
        ("GET", "/_local/poller"): lambda stack, _request: (200, stack.reply.state()),
        ("POST", "/_local/poller/restart"): _restart_poller,
        ("POST", "/_local/poller/stop"): _stop_poller,
        ("POST", "/_local/poller/start"): _start_poller,
        ("GET", "/_local/failures"): lambda stack, _request: (200, stack.reply.failures()),
    }
)


def control(stack: Controlled, method: str, path: str, body: bytes) -> Answer | None:
    """The `/_local/...` control API; None for every other path (the HTTP API's routes)."""
    if not path.startswith("/_local/"):
        return None
    return CONTROL.dispatch(stack, Request(method, path, body))
