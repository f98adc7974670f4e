"""Bounds that keep a hostile but correctly signed body a clean 400 instead of a 5xx retry loop."""

from __future__ import annotations

import json

import pytest

from messenger.errors import BadRequestError
from messenger.parsing import MAX_DEPTH, epoch_ms, load_json_object, opt_int
from messenger.providers.meta.events import parse_body
from tests.helpers import meta_body, meta_message


def nested(depth: int) -> bytes:
    # Given a JSON object whose containers nest `depth` levels deep
    return ('{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)).encode()


def test_nesting_up_to_the_limit_is_accepted():
    assert isinstance(load_json_object(nested(MAX_DEPTH)), dict)


def test_nesting_past_the_limit_is_a_bad_request():
    with pytest.raises(BadRequestError, match="nested too deeply"):
        load_json_object(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("value", [1e30, -1, 10**15, float("inf"), "1700000000000", True, None])
def test_out_of_range_or_non_integer_timestamps_are_not_used(value):
    assert opt_int(value) is None


def test_meta_event_with_an_absurd_timestamp_and_no_entry_time_gets_the_receive_time():
    # Given an event whose timestamp is far outside any real epoch-ms value, in an entry without time
    body = meta_body(meta_message("m_1", ts=10**20))
    body["entry"][0].pop("time")
    # When it is parsed / Then the message is kept, timed when it was received (never a 400 that loses it)
    events = parse_body(json.dumps(body).encode(), now_ms=1_800_000_000_123)
    assert [(e.event_id, e.text, e.timestamp_ms) for e in events] == [("m_1", "hello", 1_800_000_000_123)]


def test_meta_event_with_an_absurd_timestamp_falls_back_to_the_entry_time():
    body = meta_body(meta_message("m_2", ts=10**20))
    assert [e.timestamp_ms for e in parse_body(json.dumps(body).encode())] == [body["entry"][0]["time"]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1458692752478, 1458692752478),  # milliseconds, as documented
        ("1458692752478", 1458692752478),  # the same as a string
        (1527459824, 1527459824000),  # seconds (messaging_postbacks reference example)
        ("1527459824", 1527459824000),
        (" 1527459824 ", 1527459824000),
        ("1527459824.5", 1527459824000),
        (1527459824.5, 1527459824000),
        (1458692752478.0, 1458692752478),
        (1_000_000, 1_000_000),  # small values stay milliseconds
        (0, 0),
    ],
)
def test_epoch_values_in_seconds_or_milliseconds_as_numbers_or_strings(value, expected):
    assert epoch_ms(value) == expected


@pytest.mark.parametrize(
    "value",
    ["TIMESTAMP", "", "-1", "1e12", "0x10", "١٢٣", True, None, [], float("nan"), float("inf"), 10**20, "9" * 40],
)
def test_epoch_values_that_are_not_timestamps(value):
    assert epoch_ms(value) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"t":"a\\ud800b"}', {"t": "a\ufffdb"}),  # a lone high surrogate
        (b'{"t":"\\udfff"}', {"t": "\ufffd"}),  # a lone low surrogate
        (b'{"t":"\\uDBFF\\uDBFF"}', {"t": "\ufffd\ufffd"}),  # two highs are no pair
        (b'{"\\ud800":["\\ud800",{"k":"\\udc00x"}]}', {"\ufffd": ["\ufffd", {"k": "\ufffdx"}]}),
        (b'{"t":"\\ud83d\\ude00"}', {"t": "\U0001f600"}),  # a real pair stays the emoji
        (b'{"t":"a\xffb\xed\xa0\x80"}', {"t": "a\ufffdb\ufffd\ufffd\ufffd"}),  # bytes that are not UTF-8
        (b'\xef\xbb\xbf{"t":"bom"}', {"t": "bom"}),
    ],
)
def test_invalid_unicode_is_replaced_not_refused(raw, expected):
    # Given a body with lone UTF-16 surrogates or invalid UTF-8 / When loaded
    value = load_json_object(raw)
    # Then each bad character is U+FFFD, and everything can be encoded as UTF-8 (as DynamoDB requires)
    assert value == expected
    json.dumps(value, ensure_ascii=False).encode("utf-8")
