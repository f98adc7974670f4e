"""The raw body the signature covers, and the one error -> HTTP status mapping. No I/O."""

from __future__ import annotations

import base64

import pytest

from messenger import errors
from messenger.errors import BadRequestError, MessengerError, PayloadTooLargeError
from messenger.inbound.request import STATUS_BY_ERROR, raw_body, status_for

LIMIT = 1024


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.BadRequestError, 400),
        (errors.SignatureMissingError, 401),
        (errors.SignatureInvalidError, 401),
        (errors.HandshakeRejectedError, 403),
        (errors.PayloadTooLargeError, 413),
        (errors.ConfigError, 500),
        (errors.SecretUnavailableError, 503),
        (errors.StorageError, 503),
        (errors.UnsignedCallbackError, 503),
        (errors.MessengerError, 500),
    ],
)
def test_status_for_each_error(error, status):
    # Given a domain error / When mapped / Then it gets its one HTTP status
    assert status_for(error("x")) == status


def test_unsigned_vonage_callback_is_5xx_so_vonage_retries():
    # Given a Vonage callback without Authorization / When mapped / Then a 5xx (a 4xx is never retried)
    assert 500 <= status_for(errors.UnsignedCallbackError("x")) < 600


def test_subclass_inherits_its_parents_status():
    # Given a new error derived from BadRequestError / When mapped / Then 400 like its parent
    class OddShapeError(BadRequestError):
        pass

    assert status_for(OddShapeError("x")) == 400


def test_every_mapped_error_has_a_safe_code():
    # Given every mapped error / Then it carries a short code that is not the generic one (except the base)
    for cls in STATUS_BY_ERROR:
        assert issubclass(cls, MessengerError)
        assert cls.code and " " not in cls.code


def test_text_body_is_utf8_bytes():
    # Given API Gateway's text body (a str) / When read / Then its UTF-8 bytes
    assert raw_body({"body": '{"t":"h\u00e9llo"}', "isBase64Encoded": False}, LIMIT) == '{"t":"h\u00e9llo"}'.encode()


def test_escaped_unicode_stays_escaped():
    # Given a body with \\u escapes (as Meta sends it) / When read / Then the escapes are kept byte for byte
    assert raw_body({"body": '{"t":"\\u00e4"}'}, LIMIT) == b'{"t":"\\u00e4"}'


def test_base64_body_is_decoded_exactly():
    # Given a base64-encoded body containing non-UTF-8 bytes / When read / Then the exact bytes
    data = b"\x00\xff\xfe binary \xc3\xa4"
    assert raw_body({"body": base64.b64encode(data).decode(), "isBase64Encoded": True}, LIMIT) == data


@pytest.mark.parametrize("event", [{}, {"body": None}, {"body": ""}, {"body": "", "isBase64Encoded": True}])
def test_missing_body_is_empty_bytes(event):
    # Given no body / When read / Then b"" (the signature check then fails on its own)
    assert raw_body(event, LIMIT) == b""


@pytest.mark.parametrize("body", ["not base64!", "YWJj=", "YW Jj", "\u00e4\u00e4\u00e4\u00e4"])
def test_invalid_base64_is_bad_request(body):
    # Given a body flagged base64 that is not valid base64 / When read / Then BadRequestError
    with pytest.raises(BadRequestError):
        raw_body({"body": body, "isBase64Encoded": True}, LIMIT)


@pytest.mark.parametrize("body", [123, ["a"], {"a": 1}, True])
def test_non_string_body_is_bad_request(body):
    # Given an event whose body is not a string / When read / Then BadRequestError, not a TypeError
    with pytest.raises(BadRequestError):
        raw_body({"body": body}, LIMIT)
    with pytest.raises(BadRequestError):
        raw_body({"body": body, "isBase64Encoded": True}, LIMIT)


def test_size_limit_is_inclusive():
    # Given a body exactly at the limit and one byte over / When read / Then the first passes, the second is 413
    assert len(raw_body({"body": "x" * LIMIT}, LIMIT)) == LIMIT
    with pytest.raises(PayloadTooLargeError):
        raw_body({"body": "x" * (LIMIT + 1)}, LIMIT)


def test_size_limit_counts_bytes_not_characters():
    # Given LIMIT/2 + 1 two-byte characters / When read / Then too large
    with pytest.raises(PayloadTooLargeError):
        raw_body({"body": "\u00e4" * (LIMIT // 2 + 1)}, LIMIT)


def test_size_limit_on_base64_bodies():
    # Given base64 bodies just at and just over the limit once decoded / When read / Then pass, then 413
    at_limit = base64.b64encode(b"x" * LIMIT).decode()
    assert len(raw_body({"body": at_limit, "isBase64Encoded": True}, LIMIT)) == LIMIT
    with pytest.raises(PayloadTooLargeError):
        raw_body({"body": base64.b64encode(b"x" * (LIMIT + 1)).decode(), "isBase64Encoded": True}, LIMIT)


def test_huge_base64_body_rejected_before_decoding():
    # Given an enormous base64 string that is not even valid / When read / Then 413, without decoding it
    with pytest.raises(PayloadTooLargeError):
        raw_body({"body": "!" * (LIMIT * 10), "isBase64Encoded": True}, LIMIT)
