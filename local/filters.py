"""Lambda event filtering (FilterCriteria), sized to what template.yaml's stream filter holds.

The template's filter is one pattern of exact values in nested objects:
`{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"record_type": {"S": ["inbound"]}}}}`. For that kind of
pattern the semantics are Lambda's: a record matches when every key of the pattern matches (AND), any value of
a leaf array matches (OR), and any of several patterns matches (OR); a missing key matches nothing; strings,
numbers (by value), booleans and null match only their own kind; an array in the record matches when any of
its elements does. Content-filter operators (`prefix`, `anything-but`, `numeric`, `exists`, ...) are refused
when the pattern is read, so a template that starts using one fails loudly here instead of filtering wrongly:
implement the operator (with its tests) first.
"""

from __future__ import annotations

import json
from typing import Any

_MISSING = object()
Exact = str | int | float | bool | None


class FilterPatternError(ValueError):
    """The pattern is not one the local poller can apply (not a filter pattern, or an operator it lacks)."""


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
            if not (any(matches(rule, item) for item in value) if isinstance(value, list) else matches(rule, value)):
                return False
        elif not any(_equal(expected, actual) for expected in rule for actual in _values(value)):
            return False
    return True


def _values(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value or [_MISSING]
    return [value]


def _equal(expected: Exact, actual: Any) -> bool:
    if actual is _MISSING:
        return False
    if expected is None:
        return actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and float(expected) == float(actual)
    return isinstance(actual, str) and expected == actual


def _validate(pattern: dict[str, Any]) -> None:
    for key, rule in pattern.items():
        if isinstance(rule, dict):
            _validate(rule)
            continue
        if not isinstance(rule, list) or not rule:
            raise FilterPatternError(f"the value of {key!r} must be a non-empty array or an object")
        for item in rule:
            if isinstance(item, dict):
                operators = ", ".join(sorted(item)) or "{}"
                raise FilterPatternError(
                    f"{key!r}: filter operator {operators} is not implemented by the local poller, which applies "
                    "exact values only (all template.yaml's filter uses); add it to local/filters.py with its tests"
                )
            if isinstance(item, list):
                raise FilterPatternError(f"{key!r}: a leaf array holds values, not arrays")
