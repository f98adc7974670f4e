"""Lambda event filtering (FilterCriteria) rule semantics, for the local stream poller.

A pattern is a JSON object whose leaves are arrays of rules; a record matches when every key of the
pattern matches (AND), any rule of a leaf array matches (OR), and any of several patterns matches (OR).
Rules: exact strings/numbers/null, `prefix`, `suffix`, `equals-ignore-case`, `anything-but`
(values, or `{"prefix": ...}`/`{"suffix": ...}`), `exists`, `numeric` ranges, and nested objects.
An array in the record matches when any of its elements matches (as in EventBridge and Lambda).
"""

from __future__ import annotations

import json
from typing import Any

_MISSING = object()
_NUMERIC_OPS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FilterPatternError(ValueError):
    """The pattern is not a valid Lambda filter pattern."""


def parse_pattern(pattern: str | dict[str, Any]) -> dict[str, Any]:
    value = json.loads(pattern) if isinstance(pattern, str) else pattern
    if not isinstance(value, dict):
        raise FilterPatternError("a filter pattern must be a JSON object")
    _validate(value)
    return value


def matches_any(patterns: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    """True if the record passes the filter criteria: no patterns, or any pattern matches."""
    return not patterns or any(matches(pattern, record) for pattern in patterns)


def matches(pattern: dict[str, Any], record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    for key, rule in pattern.items():
        value = record.get(key, _MISSING)
        if isinstance(rule, dict):
            if not _match_object(rule, value):
                return False
        elif not _match_leaf(rule, value):
            return False
    return True


def _match_object(rule: dict[str, Any], value: Any) -> bool:
    if isinstance(value, list):
        return any(matches(rule, item) for item in value)
    return matches(rule, value)


def _match_leaf(rules: list[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if value is not _MISSING and isinstance(value, list) and not value:
        values = [_MISSING]
    return any(_match_rule(rule, v) for rule in rules for v in values)


def _match_rule(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        ((op, arg),) = rule.items()
        return _match_operator(op, arg, value)
    if value is _MISSING:
        return False
    if rule is None:
        return value is None
    if isinstance(rule, bool) or isinstance(value, bool):
        return isinstance(rule, bool) and isinstance(value, bool) and rule == value
    if isinstance(rule, int | float):
        return isinstance(value, int | float) and float(rule) == float(value)
    return isinstance(value, str) and rule == value


def _match_operator(op: str, arg: Any, value: Any) -> bool:
    if op == "exists":
        return (value is not _MISSING) == bool(arg)
    if value is _MISSING:
        return False
    if op == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == str(arg).casefold()
    if op == "anything-but":
        return _anything_but(arg, value)
    if op == "numeric":
        return _numeric(arg, value)
    raise FilterPatternError(f"unsupported filter operator {op!r}")


def _anything_but(arg: Any, value: Any) -> bool:
    if isinstance(arg, dict):
        ((op, inner),) = arg.items()
        if op in ("prefix", "suffix"):
            return isinstance(value, str) and not _match_operator(op, inner, value)
        raise FilterPatternError(f"unsupported anything-but operator {op!r}")
    excluded = arg if isinstance(arg, list) else [arg]
    return not any(_match_rule(item, value) for item in excluded)


def _numeric(arg: list[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    pairs = zip(arg[0::2], arg[1::2], strict=True)
    return all(_NUMERIC_OPS[op](value, bound) for op, bound in pairs)


def _validate(pattern: dict[str, Any]) -> None:
    for key, rule in pattern.items():
        if isinstance(rule, dict):
            _validate(rule)
            continue
        if not isinstance(rule, list) or not rule:
            raise FilterPatternError(f"the value of {key!r} must be a non-empty array or an object")
        for item in rule:
            if isinstance(item, dict):
                _validate_operator(key, item)


def _validate_operator(key: str, item: dict[str, Any]) -> None:
    if len(item) != 1:
        raise FilterPatternError(f"{key!r}: a rule object has exactly one operator")
    ((op, arg),) = item.items()
    if op == "numeric":
        if not isinstance(arg, list) or len(arg) not in (2, 4) or len(arg) % 2:
            raise FilterPatternError(f"{key!r}: numeric takes [op, n] or [op, n, op, n]")
        for operator, bound in zip(arg[0::2], arg[1::2], strict=True):
            if operator not in _NUMERIC_OPS or isinstance(bound, bool) or not isinstance(bound, int | float):
                raise FilterPatternError(f"{key!r}: invalid numeric comparison {operator!r} {bound!r}")
    elif op == "exists":
        if not isinstance(arg, bool):
            raise FilterPatternError(f"{key!r}: exists takes true or false")
    elif op in ("prefix", "suffix", "equals-ignore-case"):
        if not isinstance(arg, str):
            raise FilterPatternError(f"{key!r}: {op} takes a string")
    elif op == "anything-but":
        if isinstance(arg, dict) and (len(arg) != 1 or next(iter(arg)) not in ("prefix", "suffix")):
            raise FilterPatternError(f"{key!r}: anything-but takes values, or one prefix/suffix")
    else:
        raise FilterPatternError(f"{key!r}: unsupported filter operator {op!r}")
