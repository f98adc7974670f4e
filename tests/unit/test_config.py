"""Typed settings from the environment: defaults, validation, caching. No I/O."""

from __future__ import annotations

import pytest

from messenger.config import (
    DEFAULT_GRAPH_API_BASE,
    DEFAULT_GRAPH_API_VERSION,
    DEFAULT_VONAGE_API_BASE,
    get_settings,
    settings_from_env,
)
from messenger.errors import ConfigError

BASE = {"EVENTS_TABLE": "messenger-events"}


def test_defaults_from_the_architecture_contract():
    # Given only the required table name / When settings are built
    settings = settings_from_env(BASE)
    # Then the documented defaults apply
    assert settings.events_table == "messenger-events"
    assert settings.graph_api_base == DEFAULT_GRAPH_API_BASE == "https://graph.facebook.com"
    assert settings.graph_api_version == DEFAULT_GRAPH_API_VERSION == "v25.0"
    assert settings.vonage_api_base == DEFAULT_VONAGE_API_BASE == "https://api.nexmo.com"
    assert settings.meta_secret_id is None and settings.vonage_secret_id is None
    assert settings.retention_days == 14 and settings.secret_max_age_seconds == 300
    assert settings.vonage_max_token_age_seconds == 300 and settings.vonage_max_clock_skew_seconds == 60


@pytest.mark.parametrize("env", [{}, {"EVENTS_TABLE": ""}, {"EVENTS_TABLE": "   "}])
def test_events_table_is_required(env):
    # Given no table name / When settings are built / Then a ConfigError names the variable
    with pytest.raises(ConfigError, match="EVENTS_TABLE"):
        settings_from_env(env)


def test_every_documented_variable_is_read():
    # Given every variable of the contract set
    env = {
        **BASE,
        "META_SECRET_ID": "arn:meta",
        "VONAGE_SECRET_ID": "arn:vonage",
        "GRAPH_API_BASE": "http://127.0.0.1:3001/",
        "GRAPH_API_VERSION": "v26.0",
        "VONAGE_API_BASE": "http://127.0.0.1:3001//",
        "RETENTION_DAYS": "7",
        "SECRET_MAX_AGE_SECONDS": "60",
        "MAX_BODY_BYTES": "4096",
    }
    # When settings are built
    settings = settings_from_env(env)
    # Then each is used; base URLs lose trailing slashes
    assert (settings.meta_secret_id, settings.vonage_secret_id) == ("arn:meta", "arn:vonage")
    assert settings.graph_api_base == "http://127.0.0.1:3001" and settings.graph_api_version == "v26.0"
    assert settings.vonage_api_base == "http://127.0.0.1:3001"
    assert (settings.retention_days, settings.secret_max_age_seconds, settings.max_body_bytes) == (7, 60, 4096)


def test_empty_optional_values_fall_back_to_defaults():
    # Given optional variables set but empty (as a template may leave them) / When built / Then defaults
    env = {**BASE, "META_SECRET_ID": "", "GRAPH_API_BASE": "", "RETENTION_DAYS": "", "GRAPH_API_VERSION": ""}
    settings = settings_from_env(env)
    assert settings.meta_secret_id is None and settings.graph_api_base == DEFAULT_GRAPH_API_BASE
    assert settings.retention_days == 14 and settings.graph_api_version == DEFAULT_GRAPH_API_VERSION


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETENTION_DAYS", "ninety"),
        ("RETENTION_DAYS", "0"),
        ("RETENTION_DAYS", "-1"),
        ("RETENTION_DAYS", "1.5"),
        ("MAX_BODY_BYTES", "100"),
        ("SECRET_MAX_AGE_SECONDS", "-5"),
    ],
)
def test_invalid_integers_are_config_errors(name, value):
    # Given a malformed or out-of-range number / When built / Then a ConfigError names the variable
    with pytest.raises(ConfigError, match=name):
        settings_from_env({**BASE, name: value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("0", False),
        ("false", False),
        ("", False),
        ("no", False),
    ],
)
def test_boolean_flags(value, expected):
    # Given HUMAN_AGENT_TAG_ENABLED spelled various ways / When built / Then read as a boolean
    assert settings_from_env({**BASE, "HUMAN_AGENT_TAG_ENABLED": value}).human_agent_tag_enabled is expected


def test_require_secret_ids():
    # Given no secret ids / When a provider needs its secret / Then a ConfigError names the variable
    settings = settings_from_env(BASE)
    with pytest.raises(ConfigError, match="META_SECRET_ID"):
        settings.require_meta_secret_id()
    with pytest.raises(ConfigError, match="VONAGE_SECRET_ID"):
        settings.require_vonage_secret_id()
    # And with them set, they are returned
    settings = settings_from_env({**BASE, "META_SECRET_ID": "m", "VONAGE_SECRET_ID": "v"})
    assert (settings.require_meta_secret_id(), settings.require_vonage_secret_id()) == ("m", "v")


def test_settings_are_frozen():
    # Given settings / When changed / Then refused: logic receives values it cannot alter
    settings = settings_from_env(BASE)
    with pytest.raises(AttributeError):
        settings.events_table = "other"  # type: ignore[misc]


def test_get_settings_reads_the_process_env_once(monkeypatch):
    # Given the process environment
    monkeypatch.setenv("EVENTS_TABLE", "first")
    get_settings.cache_clear()
    first = get_settings()
    # When it changes without clearing the cache / Then the cached settings stay
    monkeypatch.setenv("EVENTS_TABLE", "second")
    assert get_settings() is first and first.events_table == "first"
    # And after cache_clear the new value is read
    get_settings.cache_clear()
    assert get_settings().events_table == "second"
    get_settings.cache_clear()


def test_config_error_message_carries_no_value_beyond_the_offending_one():
    # Given a secret id set and a bad number / When the error is raised / Then only the bad value is quoted
    with pytest.raises(ConfigError) as info:
        settings_from_env({**BASE, "META_SECRET_ID": "arn:aws:secret-name", "RETENTION_DAYS": "x"})
    assert "arn:aws:secret-name" not in str(info.value)
