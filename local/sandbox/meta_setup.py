"""The fake Graph API's setup edges, as `make connect` uses them: app webhook subscriptions, a Page's
subscribed apps and its Messenger profile.

- `GET|POST /{version}/{app-id}/subscriptions` (app access token `{app-id}|{app-secret}`): the POST checks
  `object`, `callback_url`, `verify_token` and `fields`, then makes Meta's verify handshake: a
  `GET {callback_url}?hub.mode=subscribe&hub.challenge=<n>&hub.verify_token=<token>` that must answer 200 with
  the challenge, else Graph error 2200 "Callback verification failed" and nothing is stored. The handshake only
  ever goes to a loopback address.
- `GET|POST /{version}/{page-id}/subscribed_apps` (the Page's token): `subscribed_fields` is required.
- `GET|POST|DELETE /{version}/me/messenger_profile` (or `/{page-id}/messenger_profile`; the Page's token): the
  POST is checked with `make connect`'s own profile check (devkit/messenger_profile.py, Meta's documented limits,
  Graph error 100 with the first problem); every call counts against the Page's 10 calls per 10 minutes, the
  11th answers Graph error 613 with an `X-Business-Use-Case-Usage` header saying when access returns.

Answers are Graph's: `{"success": true}`, `{"result": "success"}`, `{"data": [...]}`, or `{"error": {...}}`.
"""

from __future__ import annotations

import json
import math
import secrets as pysecrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from devkit.http_client import http
from devkit.messenger_profile import PROFILE_CALLS_PER_WINDOW, PROFILE_WINDOW_S, PROPERTIES, profile_problems
from devkit.sandbox_secrets import SANDBOX_APP_ID
from local.sandbox.common import SandboxReject
from local.sandbox.meta import access_token, check_token, graph_error, no_such_object

if TYPE_CHECKING:
    from local.sandbox.state import Sandbox

# The page object's Messenger webhook fields (Meta's Messenger webhooks reference) and two common page fields.
PAGE_FIELDS = frozenset(
    {
        "messages",
        "message_echoes",
        "message_deliveries",
        "message_reads",
        "message_reactions",
        "message_edits",
        "messaging_postbacks",
        "messaging_referrals",
        "messaging_optins",
        "messaging_handovers",
        "messaging_account_linking",
        "messaging_policy_enforcement",
        "response_feedback",
        "send_cart",
        "standby",
        "feed",
        "mention",
    }
)
OBJECTS = frozenset({"page", "user", "permissions", "instagram"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
HANDSHAKE_TIMEOUT_S = 10.0
Answer = tuple[int, dict[str, Any]]


def handle(
    sandbox: Sandbox, method: str, node: str, edge: str, query: dict[str, str], headers: dict[str, str], body: Any
) -> Answer:
    """One call to a setup edge: (status, answer); SandboxReject (a Graph error) if refused."""
    params = {**query, **(body if isinstance(body, dict) else {})}
    token, proof = access_token(query, headers, params)
    if edge == "subscriptions":
        return _subscriptions(sandbox, method, node, token, proof, params)
    page_id = _page_for(sandbox, node, token, proof, method)
    if edge == "subscribed_apps":
        return _subscribed_apps(sandbox, method, page_id, params)
    return _messenger_profile(sandbox, method, page_id, params)


def _fields(value: Any, name: str) -> list[str]:
    """A comma-separated string or a JSON list of field names, each one the page object has."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value:
        raise graph_error(400, 100, f"(#100) The parameter {name} is required")
    for index, field in enumerate(value):
        if field not in PAGE_FIELDS:
            raise graph_error(
                400, 100, f"(#100) Param {name}[{index}] must be one of {{{', '.join(sorted(PAGE_FIELDS))}}}"
            )
    return list(dict.fromkeys(value))


# -- /{app-id}/subscriptions ----------------------------------------------------------------------------


def _subscriptions(
    sandbox: Sandbox, method: str, node: str, token: str, proof: str | None, params: dict[str, Any]
) -> Answer:
    app_token = f"{SANDBOX_APP_ID}|{sandbox.meta['app_secret']}"
    if node != str(SANDBOX_APP_ID):
        raise no_such_object(node, method.lower())
    if token in sandbox.meta["page_tokens"].values():
        raise graph_error(400, 15, "(#15) This method must be called with an app access_token.")
    check_token(sandbox, token, app_token, proof)
    setup = sandbox.meta_setup
    if method == "GET":
        with setup.lock:
            data = [
                {
                    "object": obj,
                    "callback_url": sub["callback_url"],
                    "active": True,
                    "fields": [{"name": name, "version": setup.version} for name in sub["fields"]],
                }
                for obj, sub in setup.subscriptions.items()
            ]
        return 200, {"data": data}
    if method != "POST":
        raise no_such_object(node, method.lower())
    obj = params.get("object")
    if obj not in OBJECTS:
        raise graph_error(400, 100, f"(#100) Param object must be one of {{{', '.join(sorted(OBJECTS))}}}")
    callback_url, verify_token = params.get("callback_url"), params.get("verify_token")
    if not isinstance(callback_url, str) or not callback_url.startswith(("https://", "http://")):
        raise graph_error(400, 100, "(#100) Param callback_url must be a valid URL")
    if not isinstance(verify_token, str) or not verify_token:
        raise graph_error(400, 100, "(#100) The parameter verify_token is required")
    fields = _fields(params.get("fields"), "fields")
    _verify_handshake(sandbox, callback_url, verify_token)
    with setup.lock:
        setup.subscriptions[str(obj)] = {"callback_url": callback_url, "fields": fields}
    return 200, {"success": True}


def _verify_handshake(sandbox: Sandbox, callback_url: str, verify_token: str) -> None:
    """Meta's verification request to the callback URL; Graph error 2200 unless it echoes the challenge."""

    def failed(reason: str) -> SandboxReject:
        sandbox.log(f"[sandbox] meta verify handshake to {callback_url} failed: {reason}")
        return graph_error(400, 2200, f"(#2200) Callback verification failed with the following errors: {reason}")

    if urlsplit(callback_url).hostname not in LOOPBACK:
        raise failed("the sandbox only calls loopback addresses")
    challenge = str(pysecrets.randbelow(9 * 10**8) + 10**8)
    query = urlencode({"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token})
    separator = "&" if urlsplit(callback_url).query else "?"
    try:
        status, answer = http("GET", f"{callback_url}{separator}{query}", timeout=HANDSHAKE_TIMEOUT_S)
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise failed(f"curl_errno = 7; the URL couldn't be reached ({type(reason).__name__})") from None
    if status != 200:
        raise failed(f"HTTP Status Code = {status}")
    if str(answer).strip() != challenge:
        raise failed(
            "HTTP Status Code = 200; The URL couldn't be validated. Response does not match challenge, "
            f"expected value={challenge}"
        )
    sandbox.log(f"[sandbox] meta verify handshake to {callback_url}: challenge echoed")


# -- /{page-id}/subscribed_apps and /me/messenger_profile ---------------------------------------------


def _page_for(sandbox: Sandbox, node: str, token: str, proof: str | None, method: str) -> str:
    """The Page a Page-token call is about: `me` is the token's Page."""
    tokens = sandbox.meta["page_tokens"]
    if node == "me":
        page_id = next((page for page, value in tokens.items() if value == token), None)
        if page_id is None:
            raise graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        node = page_id
    if node not in tokens:
        raise no_such_object(node, method.lower())
    check_token(sandbox, token, tokens[node], proof)
    return node


def _subscribed_apps(sandbox: Sandbox, method: str, page_id: str, params: dict[str, Any]) -> Answer:
    setup = sandbox.meta_setup
    if method == "GET":
        with setup.lock:
            fields = setup.page_fields.get(page_id)
        app = {"category": "Business", "name": "messenger-webhook sandbox app", "id": str(SANDBOX_APP_ID)}
        return 200, {"data": [] if fields is None else [{**app, "subscribed_fields": list(fields)}]}
    if method != "POST":
        raise no_such_object(page_id, method.lower())
    fields = _fields(params.get("subscribed_fields"), "subscribed_fields")
    with setup.lock:
        setup.page_fields[page_id] = fields
    return 200, {"success": True}


def _count_profile_call(sandbox: Sandbox, page_id: str) -> None:
    """10 calls per 10 minutes per Page; the 11th is refused with Graph error 613 and the time to wait."""
    now = time.time()
    setup = sandbox.meta_setup
    with setup.lock:
        calls = setup.profile_calls.setdefault(page_id, deque())
        while calls and calls[0] <= now - PROFILE_WINDOW_S:
            calls.popleft()
        if len(calls) >= PROFILE_CALLS_PER_WINDOW:
            minutes = math.ceil((calls[0] + PROFILE_WINDOW_S - now) / 60)
            usage = {page_id: [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": minutes}]}
            reject = graph_error(400, 613, "(#613) Calls to this API have exceeded the rate limit.")
            raise SandboxReject(reject.status, reject.body, {"x-business-use-case-usage": json.dumps(usage)})
        calls.append(now)


def _messenger_profile(sandbox: Sandbox, method: str, page_id: str, params: dict[str, Any]) -> Answer:
    _count_profile_call(sandbox, page_id)
    setup = sandbox.meta_setup
    if method == "GET":
        names = _property_names(params.get("fields"))
        with setup.lock:
            profile = setup.profiles.get(page_id, {})
            found = {name: profile[name] for name in names if name in profile}
        return 200, {"data": [found] if found else []}
    if method == "DELETE":
        names = _property_names(params.get("fields"))
        with setup.lock:
            for name in names:
                setup.profiles.get(page_id, {}).pop(name, None)
        return 200, {"result": "success"}
    properties = {key: value for key, value in params.items() if key not in ("access_token", "appsecret_proof")}
    if not properties:
        raise graph_error(400, 100, f"(#100) Requires one of the params: {', '.join(PROPERTIES)}")
    with setup.lock:
        has_get_started = "get_started" in setup.profiles.get(page_id, {})
    problems = profile_problems(properties, has_get_started=has_get_started)
    if problems:
        raise graph_error(400, 100, f"(#100) {problems[0]}")
    with setup.lock:
        setup.profiles.setdefault(page_id, {}).update(_as_meta_returns(properties))
    return 200, {"result": "success"}


def _property_names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value:
        raise graph_error(400, 100, "(#100) The parameter fields is required")
    unknown = [name for name in value if name not in PROPERTIES]
    if unknown:
        raise graph_error(400, 100, f"(#100) Param fields must be one of {{{', '.join(PROPERTIES)}}}, got {unknown[0]}")
    return list(value)


def _as_meta_returns(properties: dict[str, Any]) -> dict[str, Any]:
    """What a later GET shows: a menu without `composer_input_disabled` comes back with it set to false."""
    stored = json.loads(json.dumps(properties))
    for menu in stored.get("persistent_menu") or []:
        menu.setdefault("composer_input_disabled", False)
    return dict(stored)
