"""One tiny route table for the local control APIs (`/_sandbox/...` of the sandbox, `/_local/...` of the stack).

A table maps `(method, path)` to a handler `(context, request) -> (status, JSON body)`; `ANY` as the method
matches every method. A path that is in the table but not for this method answers 405 with the allowed
methods, a path that is not in it answers 404.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ANY = "*"
Answer = tuple[int, Any]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    query: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; an empty body is `{}` (ValueError if it is not JSON)."""
        return json.loads(self.body or b"{}")


class Routes[C]:
    """`(method, path) -> handler`; `dispatch` answers the matched handler's (status, body), or 404/405."""

    def __init__(self, table: Mapping[tuple[str, str], Callable[[C, Request], Answer]], not_found: Any = None) -> None:
        self.table = dict(table)
        self.not_found = not_found if not_found is not None else {"message": "Not Found"}

    def dispatch(self, context: C, request: Request) -> Answer:
        handler = self.table.get((request.method, request.path)) or self.table.get((ANY, request.path))
        if handler is not None:
            return handler(context, request)
        allowed = sorted(method for method, path in self.table if path == request.path)
        if allowed:
            return 405, {"message": "Method Not Allowed", "allow": allowed}
        return 404, self.not_found
