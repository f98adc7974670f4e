"""The secret value objects: what they show when logged or printed."""

from __future__ import annotations

from messenger.secrets import MetaSecret, VonageSecret


def test_meta_secret_repr_and_str_show_no_secret_value() -> None:
    secret = MetaSecret(app_secret="s3cr3t-app", verify_token="s3cr3t-verify", page_tokens={"123": "s3cr3t-token"})
    for text in (repr(secret), str(secret), f"{secret}", f"{[secret]}"):
        assert "s3cr3t" not in text
        assert "123" in text


def test_vonage_secret_repr_and_str_show_only_the_application_id() -> None:
    secret = VonageSecret(
        application_id="app-1", private_key="s3cr3t-key", signature_secret="s3cr3t-sig", api_key="s3cr3t-api"
    )
    for text in (repr(secret), str(secret), f"{secret}"):
        assert "s3cr3t" not in text
        assert "app-1" in text
