"""Typed settings read once from the environment; logic receives values, never reads os.environ."""

from __future__ import annotations

import os
from functools import cache
from typing import NamedTuple

from messenger.errors import ConfigError

DEFAULT_GRAPH_API_BASE = "https://graph.facebook.com"
DEFAULT_GRAPH_API_VERSION = "v25.0"
DEFAULT_VONAGE_API_BASE = "https://api.nexmo.com"
# The one place for the defaults below: modules that take one of these as a parameter default import it from here.
DEFAULT_RETENTION_DAYS = 14  # template.yaml RetentionDays: what dedupe, statuses and redrive need
DEFAULT_SECRET_MAX_AGE_S = 300
DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_VONAGE_MAX_TOKEN_AGE_S = 300
DEFAULT_VONAGE_MAX_CLOCK_SKEW_S = 60
DEFAULT_HANDOVER_PAUSE_S = 3600


class Settings(NamedTuple):
    """Immutable settings. A NamedTuple, not a dataclass: @dataclass compiles its methods when the module is
    imported, a few milliseconds of every cold start per class (docs/design.md, "Cold start")."""

    events_table: str
    meta_secret_id: str | None = None
    vonage_secret_id: str | None = None
    graph_api_base: str = DEFAULT_GRAPH_API_BASE
    graph_api_version: str = DEFAULT_GRAPH_API_VERSION
    vonage_api_base: str = DEFAULT_VONAGE_API_BASE
    retention_days: int = DEFAULT_RETENTION_DAYS
    secret_max_age_seconds: int = DEFAULT_SECRET_MAX_AGE_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    vonage_max_token_age_seconds: int = DEFAULT_VONAGE_MAX_TOKEN_AGE_S
    vonage_max_clock_skew_seconds: int = DEFAULT_VONAGE_MAX_CLOCK_SKEW_S
    responder_rules_file: str | None = None
    human_agent_tag_enabled: bool = False
    handover_pause_seconds: int = DEFAULT_HANDOVER_PAUSE_S
    profile_lookup: bool = False
    responder_class: str | None = None

    def require_meta_secret_id(self) -> str:
        if not self.meta_secret_id:
            raise ConfigError("META_SECRET_ID is not set")
        return self.meta_secret_id

    def require_vonage_secret_id(self) -> str:
        if not self.vonage_secret_id:
            raise ConfigError("VONAGE_SECRET_ID is not set")
        return self.vonage_secret_id


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def settings_from_env(env: dict[str, str]) -> Settings:
    table = env.get("EVENTS_TABLE", "").strip()
    if not table:
        raise ConfigError("EVENTS_TABLE is required (the DynamoDB events table name)")
    return Settings(
        events_table=table,
        meta_secret_id=env.get("META_SECRET_ID") or None,
        vonage_secret_id=env.get("VONAGE_SECRET_ID") or None,
        graph_api_base=(env.get("GRAPH_API_BASE") or DEFAULT_GRAPH_API_BASE).rstrip("/"),
        graph_api_version=env.get("GRAPH_API_VERSION") or DEFAULT_GRAPH_API_VERSION,
        vonage_api_base=(env.get("VONAGE_API_BASE") or DEFAULT_VONAGE_API_BASE).rstrip("/"),
        retention_days=_int(env, "RETENTION_DAYS", DEFAULT_RETENTION_DAYS, minimum=1),
        secret_max_age_seconds=_int(env, "SECRET_MAX_AGE_SECONDS", DEFAULT_SECRET_MAX_AGE_S),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024),
        responder_rules_file=env.get("RESPONDER_RULES_FILE") or None,
        human_agent_tag_enabled=env.get("HUMAN_AGENT_TAG_ENABLED", "").lower() in ("1", "true", "yes"),
        handover_pause_seconds=_int(env, "HANDOVER_PAUSE_SECONDS", DEFAULT_HANDOVER_PAUSE_S),
        profile_lookup=env.get("PROFILE_LOOKUP", "").lower() in ("1", "true", "yes"),
        responder_class=env.get("RESPONDER_CLASS") or None,
    )


@cache
def get_settings() -> Settings:
    """Settings of this process. Tests call `get_settings.cache_clear()` after changing the env."""
    return settings_from_env(dict(os.environ))
