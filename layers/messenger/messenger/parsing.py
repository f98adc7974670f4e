"""Small, hostile JSON helpers shared by the provider parsers: every failure is a BadRequestError."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from messenger.errors import BadRequestError


def load_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, with invalid Unicode replaced by U+FFFD (see `_replace_lone_surrogates`)."""
    # Bytes that are not UTF-8 become U+FFFD instead of failing the whole body: the body is already signed,
    # and one bad character must not cost the events around it.
    text = body.decode("utf-8-sig", "replace")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequestError("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise BadRequestError("body is not a JSON object")
    if _depth_exceeds(value, MAX_DEPTH):
        raise BadRequestError("body is nested too deeply")
    if _SURROGATE_ESCAPE.search(text):
        replaced: dict[str, Any] = _replace_lone_surrogates(value)
        return replaced
    return value


MAX_DEPTH = 32
# Epoch milliseconds up to the year 5138: anything larger is not a real provider timestamp.
MAX_EPOCH_MS = 10**14
# An epoch value in this range is read as seconds (2001 to 5138); as milliseconds it would be January 1970
# to March 1973, which no provider sends. Smaller values stay milliseconds (tests use them).
SECONDS_RANGE = range(10**9, 10**11)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_NUMERIC = re.compile(r"[0-9]{1,16}(\.[0-9]*)?")


def _replace_lone_surrogates(value: Any) -> Any:
    """JSON's `\\ud800` escapes decode to unpaired UTF-16 surrogates that no UTF-8 encoder accepts (DynamoDB
    rejects the item, `str.encode` raises): each becomes U+FFFD. Pairs were already joined by json.loads."""
    if isinstance(value, str):
        return "".join("\ufffd" if _is_surrogate(ch) else ch for ch in value) if _has_surrogate(value) else value
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_lone_surrogates(v) for v in value]
    return value


def _is_surrogate(ch: str) -> bool:
    return "\ud800" <= ch <= "\udfff"


def _has_surrogate(text: str) -> bool:
    return any(_is_surrogate(ch) for ch in text)


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


def epoch_ms(value: Any) -> int | None:
    """A provider timestamp as epoch milliseconds, or None.

    Meta documents `timestamp` and `entry.time` as numbers in milliseconds, but some reference examples give
    numeric strings, some in seconds ("1527459824"): a value in SECONDS_RANGE is taken as seconds.
    """
    if isinstance(value, str):
        text = value.strip()
        if not _NUMERIC.fullmatch(text):
            return None
        value = int(text.split(".")[0])
    elif isinstance(value, float) and math.isfinite(value):
        value = int(value)
    number = opt_int(value)
    if number is None:
        return None
    return number * 1000 if number in SECONDS_RANGE else number


def stable_id(*parts: Any) -> str:
    """A deterministic id for events without a provider id: the same redelivered event hashes the same."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return "h-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]
