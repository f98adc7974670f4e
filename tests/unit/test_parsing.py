"""Bounds that keep a hostile but correctly signed body a clean 400 instead of a 5xx retry loop."""

from __future__ import annotations

import json

import pytest

from messenger.errors import BadRequestError
from messenger.parsing import MAX_DEPTH, load_json_object, opt_int
from messenger.providers.meta.events import parse_body
from tests.helpers import meta_body, meta_message


def nested(depth: int) -> bytes:
    # Given a JSON object whose containers nest `depth` levels deep
    return ("{\"a\":" * (depth - 1) + "{}" + "}" * (depth - 1)).encode()


def test_nesting_up_to_the_limit_is_accepted():
    assert isinstance(load_json_object(nested(MAX_DEPTH)), dict)


def test_nesting_past_the_limit_is_a_bad_request():
    with pytest.raises(BadRequestError, match="nested too deeply"):
        load_json_object(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("value", [1e30, -1, 10**15, float("inf"), "1700000000000", True, None])
def test_out_of_range_or_non_integer_timestamps_are_not_used(value):
    assert opt_int(value) is None


def test_meta_event_with_an_absurd_timestamp_and_no_entry_time_is_a_bad_request():
    # Given an event whose timestamp is far outside any real epoch-ms value
    body = meta_body(meta_message("m_1", ts=10**20))
    body["entry"][0].pop("time")
    # When it is parsed, then it is refused as a bad request (400), not stored and retried forever
    with pytest.raises(BadRequestError):
        parse_body(json.dumps(body).encode())


def test_meta_event_with_an_absurd_timestamp_falls_back_to_the_entry_time():
    body = meta_body(meta_message("m_2", ts=10**20))
    assert [e.timestamp_ms for e in parse_body(json.dumps(body).encode())] == [body["entry"][0]["time"]]
