"""Vonage signed callbacks: HS256 JWT bound to the body, the account and a short time window. No I/O."""

from __future__ import annotations

import hashlib
import json

import jwt
import pytest

from messenger.errors import SignatureInvalidError, UnsignedCallbackError
from messenger.providers.vonage.signature import payload_hash, sign_callback, verify_callback

SECRET = "unit-test-vonage-signature-secret-0123456789"
API_KEY = "unitkey"
NOW = 1_750_000_000
BODY = json.dumps({"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", "text": "hi"}).encode()
PRIVATE_KEY_SIZE = 2048


def clock() -> float:
    return float(NOW)


def verify(authorization: str | None, body: bytes = BODY, **kwargs):
    return verify_callback(SECRET, API_KEY, body, authorization, clock=clock, **kwargs)


def token(claims: dict, key: str = SECRET, algorithm: str = "HS256") -> str:
    """Hand-rolled tokens, for the negative cases only."""
    return "Bearer " + jwt.encode(claims, key, algorithm=algorithm)


def good_claims(**overrides) -> dict:
    return {
        "iat": NOW,
        "jti": "j",
        "iss": "Vonage",
        "payload_hash": payload_hash(BODY),
        "api_key": API_KEY,
        **overrides,
    }


def test_production_signer_verifies_and_returns_claims():
    # Given a callback signed by the production signer
    header = sign_callback(SECRET, BODY, API_KEY, issued_at=NOW)
    # When verified
    claims = verify(header)
    # Then the claims are returned, bound to this body and this account
    assert claims["payload_hash"] == hashlib.sha256(BODY).hexdigest()
    assert claims["api_key"] == API_KEY and claims["iss"] == "Vonage" and claims["iat"] == NOW


def test_signer_uses_hs256():
    # Given a production signature / When its header is read / Then it is HS256, as Vonage signs
    header = sign_callback(SECRET, BODY, API_KEY, issued_at=NOW)
    assert jwt.get_unverified_header(header.removeprefix("Bearer "))["alg"] == "HS256"


@pytest.mark.parametrize("authorization", [None, "", "   "])
def test_missing_authorization_is_unsigned_callback(authorization):
    # Given no Authorization header at all / When verified / Then UnsignedCallbackError (answered 503)
    with pytest.raises(UnsignedCallbackError):
        verify(authorization)


def test_wrong_secret_is_invalid():
    # Given a token signed with another account's secret
    header = sign_callback("another-accounts-signature-secret-0123456789", BODY, API_KEY, issued_at=NOW)
    # When verified / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify(header)


def test_tampered_body_is_invalid():
    # Given a token for the original body / When the body changes / Then payload_hash no longer matches
    header = sign_callback(SECRET, BODY, API_KEY, issued_at=NOW)
    with pytest.raises(SignatureInvalidError):
        verify(header, body=BODY.replace(b"hi", b"ho"))


def test_uppercase_payload_hash_is_accepted():
    # Given a token whose payload_hash is uppercase hex / When verified / Then accepted (hex is case-free)
    verify(token(good_claims(payload_hash=payload_hash(BODY).upper())))


def test_missing_payload_hash_is_invalid():
    # Given a correctly signed token without payload_hash / When verified / Then rejected
    claims = good_claims()
    del claims["payload_hash"]
    with pytest.raises(SignatureInvalidError):
        verify(token(claims))


@pytest.mark.parametrize("value", [123, None, "", "0" * 64])
def test_wrong_payload_hash_type_or_value_is_invalid(value):
    # Given a payload_hash that is not the body's hash / When verified / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify(token(good_claims(payload_hash=value)))


def test_wrong_api_key_is_invalid():
    # Given a token for another account's api_key / When verified / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify(sign_callback(SECRET, BODY, "otherkey", issued_at=NOW))


def test_non_string_api_key_is_invalid():
    # Given a numeric api_key claim / When verified / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify(token(good_claims(api_key=12345)))


def test_absent_api_key_is_accepted():
    # Given a token without api_key (it is optional) / When verified / Then accepted
    claims = good_claims()
    del claims["api_key"]
    assert "api_key" not in verify(token(claims))


def test_missing_iat_is_invalid():
    # Given a correctly signed token with no iat (the SDK would accept it) / When verified / Then rejected
    claims = good_claims()
    del claims["iat"]
    with pytest.raises(SignatureInvalidError):
        verify(token(claims))


@pytest.mark.parametrize("iat", ["1750000000", True, None, [NOW], float("nan")])
def test_non_numeric_iat_is_invalid(iat):
    # Given an iat that is not a finite number / When verified / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify(token(good_claims(iat=iat)))


@pytest.mark.parametrize("age", [0, 1, 299, 300])
def test_recent_iat_is_accepted(age):
    # Given a token issued up to 5 minutes ago (per the injected clock) / When verified / Then accepted
    verify(sign_callback(SECRET, BODY, API_KEY, issued_at=NOW - age))


@pytest.mark.parametrize("age", [301, 3600, 86_400, NOW])
def test_replayed_old_iat_is_invalid(age):
    # Given a genuine token replayed more than 5 minutes after it was issued
    header = sign_callback(SECRET, BODY, API_KEY, issued_at=NOW - age)
    # When verified / Then rejected as too old
    with pytest.raises(SignatureInvalidError, match="too old"):
        verify(header)


def test_same_token_is_fine_now_and_stale_later():
    # Given one token
    header = sign_callback(SECRET, BODY, API_KEY, issued_at=NOW)
    # When verified at issue time and 10 minutes later / Then only the first passes
    verify_callback(SECRET, API_KEY, BODY, header, clock=lambda: NOW)
    with pytest.raises(SignatureInvalidError):
        verify_callback(SECRET, API_KEY, BODY, header, clock=lambda: NOW + 600)


@pytest.mark.parametrize("ahead", [1, 59, 60])
def test_small_future_skew_is_accepted(ahead):
    # Given a sender clock up to 60 s ahead / When verified / Then accepted
    verify(sign_callback(SECRET, BODY, API_KEY, issued_at=NOW + ahead))


@pytest.mark.parametrize("ahead", [61, 3600])
def test_future_iat_beyond_skew_is_invalid(ahead):
    # Given a token issued more than 60 s in the future / When verified / Then rejected
    with pytest.raises(SignatureInvalidError, match="future"):
        verify(sign_callback(SECRET, BODY, API_KEY, issued_at=NOW + ahead))


def test_window_is_configurable():
    # Given a 10 s age limit / When a 20 s old token arrives / Then rejected
    header = sign_callback(SECRET, BODY, API_KEY, issued_at=NOW - 20)
    with pytest.raises(SignatureInvalidError):
        verify(header, max_age_seconds=10)


def test_alg_none_is_rejected():
    # Given an unsigned token (alg: none) with otherwise perfect claims
    header = token(good_claims(), key="", algorithm="none")
    assert jwt.get_unverified_header(header.removeprefix("Bearer "))["alg"] == "none"
    # When verified / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify(header)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_hs512_with_the_right_secret_is_rejected():
    # Given a token signed with the right secret but HS512 / When verified / Then rejected: HS256 only
    with pytest.raises(SignatureInvalidError):
        verify(token(good_claims(), algorithm="HS512"))


def test_rs256_token_is_rejected():
    # Given an RS256 token (e.g. an application JWT meant for the Messages API)
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=PRIVATE_KEY_SIZE)
    header = "Bearer " + jwt.encode(good_claims(), key, algorithm="RS256")
    # When verified / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify(header)


def test_expired_exp_claim_is_rejected():
    # Given a token that carries an exp in the past / When verified / Then rejected
    with pytest.raises(SignatureInvalidError):
        verify(token(good_claims(exp=NOW - 10)))


@pytest.mark.parametrize(
    "variant",
    ["Bearer {t}", "bearer {t}", "BEARER {t}", "Bearer  {t}", " Bearer {t} ", "Bearer {t}\n"],
)
def test_bearer_prefix_variants_accepted(variant):
    # Given a valid token with harmless variations of the scheme's spelling and spacing
    raw = sign_callback(SECRET, BODY, API_KEY, issued_at=NOW).removeprefix("Bearer ")
    # When verified / Then accepted
    verify(variant.format(t=raw))


@pytest.mark.parametrize(
    "variant",
    [
        "{t}",
        "Basic {t}",
        "Bearer",
        "Bearer ",
        "Token {t}",
        "Bearer\t{t}",
        "Bearer {t}x",
        "Bearer x.y.z",
        "Bearer {t} extra",
    ],
)
def test_bearer_prefix_missing_or_wrong_is_invalid(variant):
    # Given a header that is present but not "Bearer <valid token>"
    raw = sign_callback(SECRET, BODY, API_KEY, issued_at=NOW).removeprefix("Bearer ")
    # When verified / Then SignatureInvalidError (401), not UnsignedCallbackError
    with pytest.raises(SignatureInvalidError):
        verify(variant.format(t=raw))


def test_empty_signature_secret_never_skips_the_check():
    # Given no configured signature secret / When any token arrives / Then rejected
    header = sign_callback(SECRET, BODY, API_KEY, issued_at=NOW)
    with pytest.raises(SignatureInvalidError):
        verify_callback("", API_KEY, BODY, header, clock=clock)


def test_unicode_body_hash_is_over_raw_bytes():
    # Given an escaped-unicode body signed over its raw bytes
    raw = b'{"text":"\\u00e4"}'
    header = sign_callback(SECRET, raw, API_KEY, issued_at=NOW)
    # When the raw bytes are verified / Then they pass; the decoded re-serialised form does not
    verify(header, body=raw)
    with pytest.raises(SignatureInvalidError):
        verify(header, body=json.dumps(json.loads(raw), ensure_ascii=False).encode())


def test_error_messages_carry_no_secret():
    # Given a rejected token / When the error is rendered / Then no secret appears in it
    header = token(good_claims(api_key="otherkey"))
    with pytest.raises(SignatureInvalidError) as info:
        verify(header)
    assert SECRET not in str(info.value) and API_KEY not in str(info.value)
