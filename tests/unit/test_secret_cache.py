"""Reading the provider secrets: one GetSecretValue per max_age, clear errors that never quote a value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from messenger import secrets
from messenger.errors import SecretUnavailableError

META = {"app_secret": "s3cr3t-app", "verify_token": "s3cr3t-verify", "page_tokens": {"123": "s3cr3t-token"}}


@pytest.fixture
def stub() -> Iterator[Stubber]:
    with Stubber(secrets._client()) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def answer(stub: Stubber, secret_id: str, value: Any) -> None:
    stub.add_response("get_secret_value", {"Name": secret_id, "SecretString": value}, {"SecretId": secret_id})


def test_a_secret_is_read_once_per_max_age(stub: Stubber, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given one stored value, then a rotated one
    clock = [1000.0]
    monkeypatch.setattr(secrets.time, "monotonic", lambda: clock[0])
    answer(stub, "app/meta", json.dumps(META))
    answer(stub, "app/meta", json.dumps({**META, "app_secret": "rotated"}))
    # When it is read three times within max_age, then once after it
    first = [secrets.get_meta_secret("app/meta", max_age=300).app_secret for _ in range(3)]
    clock[0] += 301
    after = secrets.get_meta_secret("app/meta", max_age=300).app_secret
    # Then Secrets Manager was asked twice (the stubber holds exactly two answers) and the rotation is seen
    assert first == ["s3cr3t-app"] * 3
    assert after == "rotated"


def test_max_age_zero_reads_every_time(stub: Stubber) -> None:
    answer(stub, "app/meta", json.dumps(META))
    answer(stub, "app/meta", json.dumps(META))
    for _ in range(2):
        assert secrets.get_meta_secret("app/meta", max_age=0).page_tokens == {"123": "s3cr3t-token"}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("not json {s3cr3t", "could not be read (JSONDecodeError)"),
        (json.dumps(["s3cr3t"]), "is not a JSON object"),
        (json.dumps({**META, "app_secret": ""}), "lacks a non-empty string 'app_secret'"),
        (json.dumps({**META, "page_tokens": {"123": 5}}), "page_tokens must map page ids to tokens"),
    ],
)
def test_a_malformed_secret_is_unavailable_and_the_error_quotes_no_value(
    stub: Stubber, value: str, reason: str
) -> None:
    answer(stub, "app/meta", value)
    with pytest.raises(SecretUnavailableError) as raised:
        secrets.get_meta_secret("app/meta")
    assert reason in str(raised.value)
    assert "s3cr3t" not in str(raised.value) and raised.value.__cause__ is None


def test_a_missing_secret_is_unavailable_and_not_cached(stub: Stubber) -> None:
    # Given a secret that does not exist yet, then exists
    stub.add_client_error("get_secret_value", "ResourceNotFoundException", "Secrets Manager can't find it")
    answer(
        stub,
        "app/vonage",
        json.dumps({"application_id": "a", "private_key": "k", "signature_secret": "s", "api_key": "x"}),
    )
    # When it is read twice
    with pytest.raises(SecretUnavailableError, match=r"'app/vonage' could not be read \(ResourceNotFoundException\)"):
        secrets.get_vonage_secret("app/vonage")
    # Then the failure was not cached: the second read asks again and succeeds
    assert secrets.get_vonage_secret("app/vonage").application_id == "a"
