"""Small, hostile JSON helpers shared by the provider parsers: every failure is a BadRequestError."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from messenger.errors import BadRequestError


def load_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequestError("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequestError("body is not a JSON object")
    if _depth_exceeds(value, MAX_DEPTH):
        raise BadRequestError("body is nested too deeply")
    return value


MAX_DEPTH = 32
# Epoch milliseconds up to the year 5138: anything larger is not a real provider timestamp.
MAX_EPOCH_MS = 10**14


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True if containers nest deeper than `limit` (later hashing and storing recurse over the value)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(current, dict):
            stack.extend((v, depth + 1) for v in current.values() if isinstance(v, dict | list))
        elif isinstance(current, list):
            stack.extend((v, depth + 1) for v in current if isinstance(v, dict | list))
    return False


def obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequestError(f"{what} must be an object")
    return value


def opt_obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def ident(value: Any, what: str) -> str:
    """A provider id: a non-empty string (Meta sometimes sends numbers)."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise BadRequestError(f"{what} is missing or not an id")
    return str(value)


def opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def opt_int(value: Any) -> int | None:
    """A non-negative integer no larger than MAX_EPOCH_MS (timestamps, watermarks), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_EPOCH_MS:
        return value
    return None


def stable_id(*parts: Any) -> str:
    """A deterministic id for events without a provider id: the same redelivered event hashes the same."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return "h-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]
