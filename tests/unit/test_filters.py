"""Lambda event filtering (local/filters.py) for the pattern kinds template.yaml's filter holds, checked on DynamoDB
stream record shapes; every other operator is refused."""

from __future__ import annotations

import json

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


def test_values_in_one_array_are_or_and_keys_are_and() -> None:
    pattern = {"eventName": ["INSERT", "MODIFY"], "awsRegion": ["us-east-1"]}
    assert matches(pattern, {"eventName": "MODIFY", "awsRegion": "us-east-1"})
    assert not matches(pattern, {"eventName": "MODIFY", "awsRegion": "eu-west-1"})
    assert not matches(pattern, {"eventName": "REMOVE", "awsRegion": "us-east-1"})


def test_an_empty_array_in_the_record_matches_nothing() -> None:
    assert not matches({"tags": ["a"]}, {"tags": []})
    assert not matches({"tags": [None]}, {"tags": []})


def test_every_pattern_of_the_template_is_accepted() -> None:
    # Given template.yaml's FilterCriteria / Then each pattern reads (the poller would refuse one it cannot apply)
    patterns = stream_settings().filter_patterns
    assert patterns
    assert [parse_pattern(json.dumps(p)) for p in patterns] == patterns


@pytest.mark.parametrize(
    "operator",
    [
        {"prefix": "EVT#"},
        {"suffix": ".png"},
        {"equals-ignore-case": "insert"},
        {"anything-but": ["echo"]},
        {"exists": True},
        {"numeric": [">", 0]},
        {"wildcard": "*"},
    ],
)
def test_operators_the_template_does_not_use_are_refused(operator: dict) -> None:
    # Given a pattern with a content-filter operator / Then it is refused by name, not applied wrongly
    with pytest.raises(FilterPatternError, match=f"filter operator {next(iter(operator))} is not implemented"):
        parse_pattern({"dynamodb": {"NewImage": {"pk": {"S": ["EVT#1", operator]}}}})


@pytest.mark.parametrize(
    "pattern",
    [
        '["not an object"]',
        '{"a": "scalar"}',
        '{"a": []}',
        '{"a": [["nested"]]}',
        '{"a": [{"prefix": "a", "suffix": "b"}]}',
    ],
)
def test_invalid_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(FilterPatternError):
        parse_pattern(pattern)
