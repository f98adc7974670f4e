"""X-Hub-Signature-256 over the raw body, and the GET verify handshake. Pure: no I/O."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from messenger.errors import HandshakeRejectedError, SignatureInvalidError, SignatureMissingError
from messenger.providers.meta.signature import sign, verify_handshake, verify_signature

APP_SECRET = "unit-test-meta-app-secret"
BODY = b'{"object":"page","entry":[{"id":"1","time":1,"messaging":[]}]}'


def test_production_signature_verifies():
    # Given a body signed by the production signer
    header = sign(APP_SECRET, BODY)
    # When it is verified / Then nothing is raised, and the header has Meta's format
    verify_signature(APP_SECRET, BODY, header)
    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64


def test_signature_matches_the_documented_construction():
    # Given Meta's definition: lowercase hex HMAC-SHA256 keyed with the app secret over the raw bytes
    expected = "sha256=" + hmac.new(APP_SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    # When / Then the production signer produces exactly that
    assert sign(APP_SECRET, BODY) == expected


def test_uppercase_hex_is_accepted():
    # Given a valid signature whose hex digits are uppercase
    header = "sha256=" + sign(APP_SECRET, BODY).removeprefix("sha256=").upper()
    # When / Then it still verifies (hex is case-insensitive)
    verify_signature(APP_SECRET, BODY, header)


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_is_signature_missing(header):
    # Given no X-Hub-Signature-256 header / When verified / Then SignatureMissingError (401)
    with pytest.raises(SignatureMissingError):
        verify_signature(APP_SECRET, BODY, header)


def test_sha1_only_header_is_not_accepted():
    # Given only the legacy SHA1 form, correctly computed
    sha1 = "sha1=" + hmac.new(APP_SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    # When it is offered as the signature / Then it is rejected: only sha256 counts
    with pytest.raises(SignatureInvalidError):
        verify_signature(APP_SECRET, BODY, sha1)


@pytest.mark.parametrize(
    "header",
    [
        "sha256=" + "0" * 64,
        "sha256=",
        "sha256=zz",
        "garbage",
        "SHA256=" + "0" * 64,
        "sha256=" + hmac.new(b"another-secret", BODY, hashlib.sha256).hexdigest(),
    ],
)
def test_wrong_or_malformed_signature_is_invalid(header):
    # Given a header that is not the signature of this body with this secret
    # When verified / Then SignatureInvalidError
    with pytest.raises(SignatureInvalidError):
        verify_signature(APP_SECRET, BODY, header)


def test_signature_with_another_secret_is_invalid():
    # Given a body signed with someone else's app secret
    header = sign("someone-elses-secret", BODY)
    # When verified with ours / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify_signature(APP_SECRET, BODY, header)


def test_tampered_body_is_invalid():
    # Given a signature of the original body
    header = sign(APP_SECRET, BODY)
    # When one byte of the body changes / Then the signature no longer verifies
    tampered = BODY.replace(b'"id":"1"', b'"id":"2"')
    with pytest.raises(SignatureInvalidError):
        verify_signature(APP_SECRET, tampered, header)


def test_trailing_newline_in_body_is_invalid():
    # Given a signature of the exact bytes / When a newline is appended / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify_signature(APP_SECRET, BODY + b"\n", sign(APP_SECRET, BODY))


def test_empty_app_secret_never_skips_the_check():
    # Given no configured secret, and a "signature" made with the empty key
    header = sign("", BODY)
    # When verified / Then rejected rather than skipped
    with pytest.raises(SignatureInvalidError):
        verify_signature("", BODY, header)


def test_unicode_escaped_body_verifies_over_raw_bytes():
    # Given a body as Meta sends it: non-ASCII characters as \\u escapes, signed over those bytes
    raw = b'{"object":"page","entry":[{"id":"1","messaging":[{"message":{"text":"\\u00e4\\u00f6\\u00e5"}}]}]}'
    assert b"\\u00e4" in raw
    header = sign(APP_SECRET, raw)
    # When the raw bytes are verified / Then they pass
    verify_signature(APP_SECRET, raw, header)
    # And the decoded, re-serialised form (real UTF-8 characters) does not
    reserialised = json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode()
    assert "äöå".encode() in reserialised
    with pytest.raises(SignatureInvalidError):
        verify_signature(APP_SECRET, reserialised, header)


def test_utf8_body_signed_as_utf8_verifies():
    # Given a body with raw UTF-8 characters (not escaped), signed over those bytes
    raw = '{"text":"h\u00e9llo \U0001f600"}'.encode()
    # When / Then it verifies: the check is over bytes, whatever their encoding
    verify_signature(APP_SECRET, raw, sign(APP_SECRET, raw))


# -- verify handshake ---------------------------------------------------------------------------


def test_handshake_returns_challenge():
    # Given Meta's subscribe request with the right token / When verified / Then the challenge is echoed
    assert verify_handshake("verify-me", "subscribe", "verify-me", "1158201444") == "1158201444"


@pytest.mark.parametrize(
    ("mode", "token", "challenge"),
    [
        ("subscribe", "wrong", "1"),
        ("subscribe", "", "1"),
        ("subscribe", None, "1"),
        ("unsubscribe", "verify-me", "1"),
        (None, "verify-me", "1"),
        ("subscribe", "verify-me", None),
        ("Subscribe", "verify-me", "1"),
        ("subscribe", "verify-me ", "1"),
        ("subscribe", "VERIFY-ME", "1"),
    ],
)
def test_handshake_rejections(mode, token, challenge):
    # Given a request with a wrong mode, token or no challenge / When verified / Then rejected (403)
    with pytest.raises(HandshakeRejectedError):
        verify_handshake("verify-me", mode, token, challenge)


def test_handshake_with_no_configured_token_is_rejected():
    # Given an empty configured token and an empty offered token
    # When verified / Then rejected: an empty secret never matches
    with pytest.raises(HandshakeRejectedError):
        verify_handshake("", "subscribe", "", "1")
