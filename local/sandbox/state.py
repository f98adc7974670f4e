"""The sandbox's state: the secrets it checks against, recorded requests, pending faults and callbacks sent."""

from __future__ import annotations

import threading
from typing import Any

from cryptography.hazmat.primitives import serialization

from devkit.sandbox_secrets import sandbox_secrets
from local.sandbox import callbacks, meta, vonage
from local.sandbox.common import Log
from local.sandbox.faults import FaultStore
from local.sandbox.meta_setup import MetaSetup
from local.sandbox.vonage_apps import VonageApplications


class Sandbox:
    """Both providers' state; `graph_send` / `vonage_send` answer a send, `post_callback` posts one callback."""

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

    # -- the providers ----------------------------------------------------------------------------

    def graph_send(
        self, page_id: str, query: dict[str, str], headers: dict[str, str], body: dict[str, Any]
    ) -> meta.Sent:
        return meta.send(self, page_id, query, headers, body)

    def vonage_send(self, headers: dict[str, str], body: dict[str, Any]) -> vonage.Sent:
        return vonage.send(self, headers, body)

    def post_callback(
        self, provider: str, kind: str, message_id: str, target: str, body: bytes, headers: dict[str, str]
    ) -> None:
        callbacks.post_callback(self, provider, kind, message_id, target, body, headers)
