"""The Page's Messenger profile as the repo keeps it (config/messenger-profile.json), checked against Meta's
documented limits before any call; the local sandbox refuses a `POST /me/messenger_profile` with the same check.

Each figure and its source (Messenger Profile API reference pages, read 2026-12-07):
- get_started.payload: "1000 character limit" (get_started reference).
- greeting: a `default` locale is required; text "Must be in UTF-8. 160 character limit" (greeting reference).
- ice_breakers: "A maximum of 4 questions can be set"; new format `[{"call_to_actions": [{"question",
  "payload"}], "locale": "default"}]`, "default locale is REQUIRED" (ice breakers reference). Meta publishes
  no length limit for a question or its payload: only non-empty strings are required here.
- persistent_menu: at least one menu with `"locale": "default"`; `call_to_actions` "Maximum of 20 items"
  (flat: nested menus were removed in v8.0); item `type` web_url or postback, `title` "30 character limit",
  postback `payload` "1000 character limit", web_url `url` required; `composer_input_disabled` needs
  `call_to_actions`; a Get Started button must be set (persistent menu reference, "Requirements").
- whitelisted_domains: "Up to 50 domains allowed", served over HTTPS, a fully qualified domain name (no IP
  address, no localhost) (domain allowlist reference).
- Every property: "10 API calls per 10 minute interval", per Page (each property reference, "Rate Limit").

A property set to `null` in the file is removed from the Page (`DELETE /me/messenger_profile`); a property the
file does not name is left as it is.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from devkit.lambda_code import ROOT, add_layers_to_path

add_layers_to_path()
from messenger.providers.meta.limits import PAYLOAD_MAX  # noqa: E402 - needs the layer on sys.path

PROFILE_FILE = ROOT / "config" / "messenger-profile.json"
PROPERTIES = ("get_started", "greeting", "ice_breakers", "persistent_menu", "whitelisted_domains")
GET_STARTED_PAYLOAD_MAX = 1000
GREETING_TEXT_MAX = 160
MAX_ICE_BREAKERS = 4
MAX_MENU_ITEMS = 20
MENU_TITLE_MAX = 30
MENU_PAYLOAD_MAX = PAYLOAD_MAX  # the same 1000 characters as every postback payload
MENU_ITEM_TYPES = frozenset({"postback", "web_url"})
WEBVIEW_HEIGHTS = frozenset({"compact", "tall", "full"})
MAX_DOMAINS = 50
PROFILE_CALLS_PER_WINDOW = 10
PROFILE_WINDOW_S = 600
DEFAULT_LOCALE = "default"
LOCALE = re.compile(r"^(default|[a-z]{2}_[A-Z]{2})$")  # Meta's supported locales are all ll_CC


class ProfileError(ValueError):
    """The profile file cannot be used: every problem found, one per line."""


class Offer(NamedTuple):
    """A postback the profile lets a person send: where it comes from, the title Meta sends, and its payload."""

    source: str
    title: str
    payload: str


def load_profile(path: Path = PROFILE_FILE) -> dict[str, Any]:
    """The profile file, checked; ProfileError naming the file and every problem."""
    try:
        profile = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path.name}: cannot be read ({type(exc).__name__})") from None
    except ValueError as exc:
        raise ProfileError(f"{path.name}: not valid JSON ({exc})") from None
    problems = profile_problems(profile)
    if problems:
        raise ProfileError(f"{path.name}:\n" + "\n".join(f"  - {problem}" for problem in problems))
    return dict(profile)


def profile_problems(profile: Any, *, has_get_started: bool = False) -> list[str]:
    """Why Meta would refuse this profile (empty when every property is within its limits).

    `has_get_started`: the Page already has a Get Started button (the persistent menu needs one).
    """
    if not isinstance(profile, dict):
        return ["the profile must be a JSON object"]
    problems = [
        f"unknown property {key!r} (managed: {', '.join(PROPERTIES)})" for key in profile if key not in PROPERTIES
    ]
    checks = {
        "get_started": _get_started,
        "greeting": _greeting,
        "ice_breakers": _ice_breakers,
        "persistent_menu": _persistent_menu,
        "whitelisted_domains": _domains,
    }
    for key, check in checks.items():
        if profile.get(key) is not None:
            problems += check(profile[key])
    get_started = profile.get("get_started") is not None or (has_get_started and "get_started" not in profile)
    if profile.get("persistent_menu") is not None and not get_started:
        problems.append("persistent_menu needs get_started: Meta shows the menu only with a Get Started button")
    return problems


def offers(profile: dict[str, Any]) -> list[Offer]:
    """Every postback the profile can send: the Get Started button, each ice breaker, each menu postback."""
    found: list[Offer] = []
    if profile.get("get_started"):
        found.append(Offer("get_started", "Get Started", profile["get_started"]["payload"]))
    for menu in profile.get("ice_breakers") or []:
        for action in menu["call_to_actions"]:
            found.append(Offer(f"ice_breakers[{menu['locale']}]", action["question"], action["payload"]))
    for menu in profile.get("persistent_menu") or []:
        for item in menu.get("call_to_actions") or []:
            if item["type"] == "postback":
                found.append(Offer(f"persistent_menu[{menu['locale']}]", item["title"], item["payload"]))
    return found


def _text(name: str, value: Any, limit: int | None = None) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return [f"{name} must be a non-empty string"]
    if limit is not None and len(value) > limit:
        return [f"{name} has {len(value)} characters; Meta's limit is {limit}"]
    return []


def _unknown(name: str, value: dict[str, Any], allowed: set[str]) -> list[str]:
    return [f"{name}: unknown key {key!r}" for key in value if key not in allowed]


def _locales(name: str, value: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The per-locale objects of `value`, and what is wrong with the list: a list of objects, each with a
    distinct supported locale, one of them `default`."""
    if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
        return [], [f"{name} must be a non-empty list of objects"]
    problems = []
    locales = [item.get("locale") for item in value]
    for index, locale in enumerate(locales):
        if not isinstance(locale, str) or not LOCALE.match(locale):
            problems.append(f"{name}[{index}].locale must be 'default' or a locale such as en_US, got {locale!r}")
    if DEFAULT_LOCALE not in locales:
        problems.append(f"{name} needs an entry with locale 'default' (Meta requires it)")
    if len(set(map(str, locales))) != len(locales):
        problems.append(f"{name}: each locale may appear once")
    return value, problems


def _get_started(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["get_started must be an object with a payload"]
    return _unknown("get_started", value, {"payload"}) + _text(
        "get_started.payload", value.get("payload"), GET_STARTED_PAYLOAD_MAX
    )


def _greeting(value: Any) -> list[str]:
    items, problems = _locales("greeting", value)
    for index, item in enumerate(items):
        problems += _unknown(f"greeting[{index}]", item, {"locale", "text"})
        problems += _text(f"greeting[{index}].text", item.get("text"), GREETING_TEXT_MAX)
    return problems


def _ice_breakers(value: Any) -> list[str]:
    items, problems = _locales("ice_breakers", value)
    for index, item in enumerate(items):
        name = f"ice_breakers[{index}]"
        problems += _unknown(name, item, {"locale", "call_to_actions"})
        actions = item.get("call_to_actions")
        if not isinstance(actions, list) or not actions:
            problems.append(
                f"{name}.call_to_actions must be a non-empty list (the new format; the old one is deprecated)"
            )
            continue
        if len(actions) > MAX_ICE_BREAKERS:
            problems.append(f"{name} has {len(actions)} questions; Meta allows at most {MAX_ICE_BREAKERS}")
        for position, action in enumerate(actions):
            where = f"{name}.call_to_actions[{position}]"
            if not isinstance(action, dict):
                problems.append(f"{where} must be an object with question and payload")
                continue
            problems += _unknown(where, action, {"question", "payload"})
            problems += _text(f"{where}.question", action.get("question"))
            problems += _text(f"{where}.payload", action.get("payload"))
    return problems


def _persistent_menu(value: Any) -> list[str]:
    items, problems = _locales("persistent_menu", value)
    for index, item in enumerate(items):
        name = f"persistent_menu[{index}]"
        problems += _unknown(name, item, {"locale", "composer_input_disabled", "call_to_actions", "disabled_surfaces"})
        disabled = item.get("composer_input_disabled", False)
        if not isinstance(disabled, bool):
            problems.append(f"{name}.composer_input_disabled must be true or false")
        actions = item.get("call_to_actions")
        if actions is None and not disabled:
            continue
        if not isinstance(actions, list) or not actions:
            problems.append(f"{name}.call_to_actions must be a non-empty list (required with composer_input_disabled)")
            continue
        if len(actions) > MAX_MENU_ITEMS:
            problems.append(f"{name} has {len(actions)} items; Meta allows at most {MAX_MENU_ITEMS}")
        for position, action in enumerate(actions):
            problems += _menu_item(f"{name}.call_to_actions[{position}]", action)
    return problems


def _menu_item(where: str, item: Any) -> list[str]:
    if not isinstance(item, dict):
        return [f"{where} must be an object"]
    kind = item.get("type")
    if kind not in MENU_ITEM_TYPES:
        return [f"{where}.type must be postback or web_url (nested menus were removed in Graph v8.0), got {kind!r}"]
    allowed = (
        {"type", "title", "payload"}
        if kind == "postback"
        else {
            "type",
            "title",
            "url",
            "webview_height_ratio",
            "messenger_extensions",
            "fallback_url",
            "webview_share_button",
        }
    )
    problems = _unknown(where, item, allowed) + _text(f"{where}.title", item.get("title"), MENU_TITLE_MAX)
    if kind == "postback":
        return problems + _text(f"{where}.payload", item.get("payload"), MENU_PAYLOAD_MAX)
    if not _is_http_url(item.get("url")):
        problems.append(f"{where}.url must be an http(s) URL")
    height = item.get("webview_height_ratio")
    if height is not None and height not in WEBVIEW_HEIGHTS:
        problems.append(f"{where}.webview_height_ratio must be one of {sorted(WEBVIEW_HEIGHTS)}")
    return problems


def _domains(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        return ["whitelisted_domains must be a non-empty list of https URLs"]
    problems = []
    if len(value) > MAX_DOMAINS:
        problems.append(f"whitelisted_domains has {len(value)} domains; Meta allows at most {MAX_DOMAINS}")
    for index, domain in enumerate(value):
        host = urlsplit(domain).hostname if isinstance(domain, str) and domain.startswith("https://") else None
        if not host or host == "localhost" or _is_ip(host) or "." not in host:
            problems.append(f"whitelisted_domains[{index}] must be an https URL with a fully qualified domain name")
    return problems


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://")) and bool(urlsplit(value).hostname)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
