"""Lambda event-filtering rules (local/filters.py), checked on DynamoDB stream record shapes."""

from __future__ import annotations

import pytest

from local.filters import FilterPatternError, matches, matches_any, parse_pattern
from local.template import stream_settings


def record(event_name: str = "INSERT", record_type: str | None = "inbound", **extra: object) -> dict:
    image: dict = {"pk": {"S": "EVT#meta#m1"}}
    if record_type is not None:
        image["record_type"] = {"S": record_type}
    return {"eventName": event_name, "dynamodb": {"NewImage": image, "SizeBytes": 120}, **extra}


def test_template_pattern_passes_only_new_inbound_messages() -> None:
    # Given the stream filter template.yaml declares
    patterns = stream_settings().filter_patterns
    # Then only an INSERT of an inbound item passes
    assert matches_any(patterns, record())
    assert not matches_any(patterns, record("MODIFY"))
    assert not matches_any(patterns, record("REMOVE"))
    for other in ("echo", "event", "outbound", "reply"):
        assert not matches_any(patterns, record(record_type=other))
    assert not matches_any(patterns, record(record_type=None))


def test_no_patterns_match_everything_and_several_patterns_are_or() -> None:
    assert matches_any([], record("REMOVE"))
    patterns = [{"eventName": ["MODIFY"]}, {"eventName": ["REMOVE"]}]
    assert matches_any(patterns, record("REMOVE"))
    assert not matches_any(patterns, record("INSERT"))


def test_exact_values_strings_numbers_null_and_booleans() -> None:
    assert matches({"a": ["x", "y"]}, {"a": "y"})
    assert not matches({"a": ["x"]}, {"a": "X"})
    assert matches({"n": [5]}, {"n": 5.0})
    assert not matches({"n": [5]}, {"n": "5"}), "numbers and strings never match each other"
    assert matches({"z": [None]}, {"z": None})
    assert not matches({"z": [None]}, {})
    assert matches({"b": [True]}, {"b": True})
    assert not matches({"b": [1]}, {"b": True})


def test_missing_key_and_nested_objects() -> None:
    pattern = {"dynamodb": {"NewImage": {"record_type": {"S": ["inbound"]}}}}
    assert matches(pattern, record())
    assert not matches(pattern, {"dynamodb": {}})
    assert not matches(pattern, {"dynamodb": "flat"})


def test_arrays_in_the_record_match_if_any_element_matches() -> None:
    assert matches({"tags": ["b"]}, {"tags": ["a", "b"]})
    assert not matches({"tags": ["c"]}, {"tags": ["a", "b"]})
    assert matches({"items": {"k": ["v"]}}, {"items": [{"k": "w"}, {"k": "v"}]})


def test_prefix_suffix_and_equals_ignore_case() -> None:
    assert matches({"pk": [{"prefix": "EVT#"}]}, {"pk": "EVT#meta#1"})
    assert not matches({"pk": [{"prefix": "MSG#"}]}, {"pk": "EVT#meta#1"})
    assert not matches({"pk": [{"prefix": "1"}]}, {"pk": 12})
    assert matches({"f": [{"suffix": ".png"}]}, {"f": "a.png"})
    assert matches({"e": [{"equals-ignore-case": "insert"}]}, {"e": "INSERT"})


def test_anything_but_values_and_prefix() -> None:
    assert matches({"t": [{"anything-but": ["echo", "event"]}]}, {"t": "inbound"})
    assert not matches({"t": [{"anything-but": ["echo", "event"]}]}, {"t": "echo"})
    assert matches({"t": [{"anything-but": "echo"}]}, {"t": "x"})
    assert not matches({"t": [{"anything-but": "echo"}]}, {}), "a missing field matches nothing but exists:false"
    assert matches({"t": [{"anything-but": {"prefix": "REPLY#"}}]}, {"t": "EVT#x"})
    assert not matches({"t": [{"anything-but": {"prefix": "REPLY#"}}]}, {"t": "REPLY#x"})
    assert matches({"n": [{"anything-but": [1, 2]}]}, {"n": 3})


def test_exists() -> None:
    assert matches({"a": [{"exists": True}]}, {"a": None})
    assert not matches({"a": [{"exists": True}]}, {})
    assert matches({"a": [{"exists": False}]}, {})
    assert not matches({"a": [{"exists": False}]}, {"a": 1})
    assert matches({"d": {"OldImage": [{"exists": False}]}}, {"d": {"NewImage": {}}})


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ([">", 0], 1, True),
        ([">", 0], 0, False),
        ([">=", 0, "<", 10], 10, False),
        ([">=", 0, "<", 10], 9.5, True),
        (["=", 3], 3, True),
        (["<=", 5], "5", False),
        (["<", 5], True, False),
    ],
)
def test_numeric_ranges(rule: list, value: object, expected: bool) -> None:
    assert matches({"n": [{"numeric": rule}]}, {"n": value}) is expected


def test_rules_in_one_array_are_or_and_keys_are_and() -> None:
    pattern = {"eventName": ["INSERT", {"prefix": "MOD"}], "awsRegion": ["us-east-1"]}
    assert matches(pattern, {"eventName": "MODIFY", "awsRegion": "us-east-1"})
    assert not matches(pattern, {"eventName": "MODIFY", "awsRegion": "eu-west-1"})


@pytest.mark.parametrize(
    "pattern",
    [
        '["not an object"]',
        '{"a": "scalar"}',
        '{"a": []}',
        '{"a": [{"numeric": [">"]}]}',
        '{"a": [{"numeric": ["~", 1]}]}',
        '{"a": [{"exists": "yes"}]}',
        '{"a": [{"prefix": 1}]}',
        '{"a": [{"wildcard": "*"}]}',
        '{"a": [{"prefix": "a", "suffix": "b"}]}',
    ],
)
def test_invalid_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(FilterPatternError):
        parse_pattern(pattern)
