"""The sandbox's state: the secrets it checks against, recorded requests, pending faults, callbacks sent and what
the setup APIs hold. It imports none of the modules that act on it (meta, vonage, callbacks, the setup APIs)."""

from __future__ import annotations

import copy
import threading
from collections import deque
from typing import Any

from cryptography.hazmat.primitives import serialization

from devkit.sandbox_secrets import sandbox_secrets
from local.sandbox.common import Log
from local.sandbox.faults import FaultStore


class MetaSetup:
    """The Meta app's subscriptions, each Page's subscribed fields and Messenger profile, and the profile calls
    each Page made in the current rate-limit window."""

    def __init__(self, version: str = "v25.0") -> None:
        self.version = version
        self.lock = threading.Lock()
        self.subscriptions: dict[str, dict[str, Any]] = {}  # object -> {callback_url, fields}
        self.page_fields: dict[str, list[str]] = {}  # page id -> fields our app is subscribed to
        self.profiles: dict[str, dict[str, Any]] = {}  # page id -> properties
        self.profile_calls: dict[str, deque[float]] = {}  # page id -> times of its profile calls

    def reset_rate_limits(self) -> None:
        with self.lock:
            self.profile_calls.clear()


class VonageApplications:
    """The sandbox's one Vonage application."""

    def __init__(self, application_id: str, public_key: Any) -> None:
        pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.lock = threading.Lock()
        self.application: dict[str, Any] = {
            "id": application_id,
            "name": "messenger-webhook sandbox",
            "capabilities": {},
            "privacy": {"improve_ai": False},
            "keys": {"public_key": pem.decode()},
        }

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.application)


class Sandbox:
    """Both providers' state; meta.send / vonage.send answer a send, callbacks.post_callback posts one callback."""

    def __init__(
        self,
        webhook_base: str | None = None,
        *,
        callback_delay_s: float = 0.2,
        log: Log = print,
        retry_time_scale: float = 60.0,
    ) -> None:
        secrets = sandbox_secrets()
        self.meta = secrets["meta"]
        self.vonage = secrets["vonage"]
        private_key = serialization.load_pem_private_key(self.vonage["private_key"].encode(), password=None)
        self.vonage_public_key = private_key.public_key()
        self.pages = set(self.meta["page_tokens"])
        self.webhook_base = webhook_base.rstrip("/") if webhook_base else None
        self.callback_delay_s = callback_delay_s
        self.callbacks_enabled = True
        self.retry_time_scale = retry_time_scale
        self.read_delay_s = 1.0
        self.log = log
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.faults = FaultStore(log)
        self.meta_setup = MetaSetup()
        self.vonage_apps = VonageApplications(self.vonage["application_id"], self.vonage_public_key)
        self._next_id = 1

    # -- bookkeeping ------------------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry["id"] = self._next_id
            self._next_id += 1
            self.requests.append(entry)
        return entry

    def list_requests(
        self, provider: str | None = None, recipient: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r["id"] > since
                and (provider is None or r["provider"] == provider)
                and (recipient is None or r.get("recipient") == recipient)
            ]

    def add_callback(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.callbacks.append(entry)

    def list_callbacks(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.callbacks)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.callbacks.clear()

    def configure(self, config: dict[str, Any]) -> dict[str, Any]:
        """Change the callback settings named in `config`; the settings now in force."""
        if "webhook_base" in config:
            self.webhook_base = str(config["webhook_base"]).rstrip("/") or None
        if "callback_delay_s" in config:
            self.callback_delay_s = float(config["callback_delay_s"])
        if "read_delay_s" in config:
            self.read_delay_s = float(config["read_delay_s"])
        if "callbacks" in config:
            self.callbacks_enabled = bool(config["callbacks"])
        if "retry_time_scale" in config:
            self.retry_time_scale = max(1.0, float(config["retry_time_scale"]))
        return {
            "webhook_base": self.webhook_base,
            "callback_delay_s": self.callback_delay_s,
            "read_delay_s": self.read_delay_s,
            "callbacks": self.callbacks_enabled,
            "retry_time_scale": self.retry_time_scale,
        }

    def setup(self) -> dict[str, Any]:
        """What `make connect` set: the app's subscriptions, each Page's fields and profile, the Vonage app."""
        with self.meta_setup.lock:
            subscriptions = {key: dict(value) for key, value in self.meta_setup.subscriptions.items()}
            page_fields = {key: list(value) for key, value in self.meta_setup.page_fields.items()}
            profiles = {key: dict(value) for key, value in self.meta_setup.profiles.items()}
        application = self.vonage_apps.snapshot()
        application.pop("keys", None)
        return {
            "meta": {"subscriptions": subscriptions, "page_fields": page_fields, "profiles": profiles},
            "vonage": {"application": application},
        }
