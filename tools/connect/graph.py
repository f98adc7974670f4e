"""The Graph API calls `make connect` makes, and what each Graph error means for the person running it.

- `GET/POST /{app-id}/subscriptions` with the app access token `{app-id}|{app-secret}` (Webhooks
  subscriptions edge): `object=page`, `callback_url`, `verify_token`, `fields`. Meta calls the verify handshake
  on the callback URL before it answers. The GET does not return the verify token.
- `GET/POST /{page-id}/subscribed_apps` with the Page's token and `subscribed_fields` (Page Subscribed Apps:
  needs `pages_manage_metadata`; "only fields with subscriptions at both the page and app levels will get
  Webhooks").
- `GET/POST/DELETE /me/messenger_profile` with the Page's token (needs `pages_messaging`; 10 calls per 10
  minutes per Page).

Every call carries `access_token` and its `appsecret_proof` (required when the app has "Require App Secret" on)
as query parameters, which never appear in a message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from devkit.http_client import Reply
from devkit.lambda_code import add_layers_to_path
from tools.connect.api import Caller, ConnectError, wait_text

add_layers_to_path()
from messenger.providers.meta.send import THROTTLE_CODES, appsecret_proof  # noqa: E402 - needs the layer

TRANSIENT_GRAPH_CODES = frozenset({1, 2})
PERMISSION_CODES = frozenset({3, 10}) | frozenset(range(200, 300))
VERIFY_FAILED = 2200


@dataclass(frozen=True)
class Token:
    """A token and what to say when Meta refuses it."""

    value: str
    name: str  # "the app access token", "Page 123's token"
    expired_fix: str  # what to do when it is expired or invalid
    permissions: str  # what it needs


def graph_error(reply: Reply, token: Token, rate_limit: str = "") -> ConnectError:
    """A Graph error answer as a ConnectError a person can act on."""
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    error = error if isinstance(error, dict) else {}
    code, subcode = error.get("code"), error.get("error_subcode")
    label = f"Graph code {code}" + (f"/{subcode}" if subcode else "")
    message = str(error.get("message") or reply.body or "")[:300]
    if reply.status == 429 or code in THROTTLE_CODES:
        wait_s = _wait_s(reply.headers)
        advice = wait_text(wait_s, rate_limit or "wait a few minutes (Meta gives no time)")
        return ConnectError(f"rate limited by Meta ({label}): {advice}, then run again", wait_s=wait_s)
    if code == 190:
        return ConnectError(f"{token.name} is expired or invalid ({label}): {token.expired_fix}")
    if code in PERMISSION_CODES:
        return ConnectError(
            f"permission missing ({label}): {token.name} needs {token.permissions}. Meta says: {message}"
        )
    if code == VERIFY_FAILED:
        return ConnectError(f"Meta could not verify the callback URL ({label}): {message}")
    retryable = reply.status >= 500 or code in TRANSIENT_GRAPH_CODES or bool(error.get("is_transient"))
    return ConnectError(f"Graph answered {reply.status} ({label}): {message}", retryable=retryable)


def _wait_s(headers: dict[str, str]) -> float | None:
    """`estimated_time_to_regain_access` (minutes) of the X-Business-Use-Case-Usage header, in seconds."""
    try:
        usage = json.loads(headers.get("x-business-use-case-usage", "{}"))
        minutes = [
            entry.get("estimated_time_to_regain_access", 0)
            for entries in usage.values()
            for entry in entries
            if isinstance(entry, dict)
        ]
    except (ValueError, AttributeError, TypeError):
        return None
    return max(minutes) * 60.0 if minutes and max(minutes) > 0 else None


@dataclass
class Graph:
    """`{base}/{version}/...` with one app secret (for every call's appsecret_proof)."""

    base: str
    version: str
    app_secret: str
    caller: Caller

    def url(self, path: str, token: Token, **params: str) -> str:
        query = {
            **params,
            "access_token": token.value,
            "appsecret_proof": appsecret_proof(self.app_secret, token.value),
        }
        return f"{self.base.rstrip('/')}/{self.version}/{path.lstrip('/')}?{urlencode(query)}"

    def get(self, path: str, token: Token, rate_limit: str = "", **params: str) -> Any:
        return self.caller.call("GET", self.url(path, token, **params), lambda r: graph_error(r, token, rate_limit))

    def post_form(self, path: str, token: Token, form: dict[str, str]) -> Any:
        return self.caller.call(
            "POST",
            self.url(path, token),
            lambda r: graph_error(r, token),
            urlencode(form).encode(),
            {"content-type": "application/x-www-form-urlencoded"},
        )

    def send_json(self, method: str, path: str, token: Token, body: dict[str, Any], rate_limit: str = "") -> Any:
        return self.caller.call(
            method, self.url(path, token), lambda r: graph_error(r, token, rate_limit), json.dumps(body).encode()
        )
