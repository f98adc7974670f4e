"""What `make connect` manages, read from the providers and compared with what the stack needs.

Each managed setting is an `Item` (current vs wanted, or why it was skipped or could not be read); the writes
that bring the changed items in line are `Step`s, applied in order: the app's webhook subscription first (Meta
verifies the callback URL then), each Page's subscription, each Page's Messenger profile (one POST for every
changed property, one DELETE for the removed ones: the profile API allows 10 calls per 10 minutes per Page),
then the Vonage application's Messages webhooks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from devkit.messenger_profile import PROFILE_CALLS_PER_WINDOW, PROFILE_WINDOW_S
from tools.connect.api import ConnectError
from tools.connect.graph import Graph, Token
from tools.connect.vonage import Applications, messages_webhooks, update_body, wanted_webhooks

# Every Messenger webhook field the webhook handles (docs/messenger-coverage.md), subscribed at both the app
# and the Page level: Meta sends only the fields subscribed at both.
WEBHOOK_FIELDS = (
    "messages",
    "message_echoes",
    "message_deliveries",
    "message_reads",
    "messaging_postbacks",
    "message_reactions",
    "messaging_referrals",
    "messaging_optins",
    "messaging_handovers",
)
_WINDOW_MIN = PROFILE_WINDOW_S // 60
PROFILE_RATE_LIMIT = (
    f"the Messenger Profile API allows {PROFILE_CALLS_PER_WINDOW} calls per {_WINDOW_MIN} minutes per Page: "
    f"wait up to {_WINDOW_MIN} minutes"
)
SHOWN_CHARS = 160


class State(StrEnum):
    IN_SYNC = "ok"
    CHANGE = "change"
    SKIPPED = "skip"
    FAILED = "error"


@dataclass
class Item:
    name: str
    state: State
    current: str = ""
    wanted: str = ""
    note: str = ""


@dataclass
class Step:
    """One write that brings `items` in line."""

    label: str
    items: list[Item]
    run: Callable[[], Any]


@dataclass
class Plan:
    items: list[Item] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def add(self, items: list[Item], step: Step | None = None) -> None:
        self.items += items
        if step is not None:
            self.steps.append(step)

    def count(self, state: State) -> int:
        return sum(item.state is state for item in self.items)


def shown(value: Any) -> str:
    """A value as one line of compact JSON, cut to SHOWN_CHARS."""
    if value is None:
        return "(not set)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def fields_text(callback: str | None, fields: list[str]) -> str:
    head = f"callback {callback}, " if callback is not None else ""
    return f"{head}fields {', '.join(fields) if fields else '(none)'}"


def _names(fields: Any) -> list[str]:
    """Field names from Graph's `fields` (objects with `name`) or `subscribed_fields` (strings)."""
    names = []
    for entry in fields or []:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(name, str):
            names.append(name)
    return names


def _merged(current: list[str]) -> list[str]:
    """Our fields first, then any other field already subscribed (someone else's choice, kept)."""
    return [*WEBHOOK_FIELDS, *(name for name in current if name not in WEBHOOK_FIELDS)]


def failed(name: str, exc: ConnectError) -> Item:
    return Item(name, State.FAILED, note=str(exc))


# -- Meta -------------------------------------------------------------------------------------------------


def plan_app_subscription(plan: Plan, graph: Graph, app_id: str, callback_url: str, verify_token: str) -> None:
    """The app's `page` webhook subscription: our callback URL and every field we handle."""
    name = f"Meta app {app_id}: Page webhooks"
    token = Token(
        f"{app_id}|{graph.app_secret}",
        "the app access token (app id | app secret)",
        "check META_APP_ID and the secret's app_secret (App settings > Basic)",
        "to be the app's own token (an app id and secret that belong together)",
    )
    try:
        answer = graph.get(f"{app_id}/subscriptions", token)
    except ConnectError as exc:
        plan.add([failed(name, exc)])
        return
    page = next((s for s in (answer or {}).get("data", []) if s.get("object") == "page"), None)
    current_fields = _names(page.get("fields")) if page else []
    current = fields_text(page.get("callback_url"), current_fields) if page else "not subscribed"
    if page and not page.get("active", True):
        current += " (inactive)"
    wanted = fields_text(callback_url, list(WEBHOOK_FIELDS))
    in_sync = bool(
        page
        and page.get("active", True)
        and page.get("callback_url") == callback_url
        and set(WEBHOOK_FIELDS) <= set(current_fields)
    )
    if in_sync:
        plan.add([Item(name, State.IN_SYNC, current, wanted)])
        return
    item = Item(name, State.CHANGE, current, wanted, "Meta then calls GET /meta/webhook to verify the callback")
    form = {
        "object": "page",
        "callback_url": callback_url,
        "verify_token": verify_token,
        "fields": ",".join(_merged(current_fields)),
    }
    plan.add([item], Step(name, [item], lambda: graph.post_form(f"{app_id}/subscriptions", token, form)))


def page_token(page_id: str, value: str) -> Token:
    return Token(
        value,
        f"Page {page_id}'s token",
        f"put a fresh Page access token for {page_id} in the Meta secret's page_tokens",
        "pages_manage_metadata (subscriptions) and pages_messaging (profile), from a person who can manage the Page",
    )


def plan_page_subscription(plan: Plan, graph: Graph, app_id: str, page_id: str, token: Token) -> None:
    """The Page's subscription to our app, with every field we handle."""
    name = f"Page {page_id}: subscribed to app {app_id}"
    try:
        answer = graph.get(f"{page_id}/subscribed_apps", token)
    except ConnectError as exc:
        plan.add([failed(name, exc)])
        return
    ours = next((a for a in (answer or {}).get("data", []) if str(a.get("id")) == str(app_id)), None)
    current_fields = _names(ours.get("subscribed_fields")) if ours else []
    current = fields_text(None, current_fields) if ours else "not subscribed"
    wanted = fields_text(None, list(WEBHOOK_FIELDS))
    if ours and set(WEBHOOK_FIELDS) <= set(current_fields):
        plan.add([Item(name, State.IN_SYNC, current, wanted)])
        return
    item = Item(name, State.CHANGE, current, wanted)
    form = {"subscribed_fields": ",".join(_merged(current_fields))}
    plan.add([item], Step(name, [item], lambda: graph.post_form(f"{page_id}/subscribed_apps", token, form)))


def covers(wanted: Any, current: Any) -> bool:
    """`current` (as Meta returns it) holds everything `wanted` sets; keys Meta adds with defaults are ignored,
    and a `false` the Page leaves out counts as false."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(
            covers(value, current[key]) if key in current else value in (False, None) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(current, list)
            and len(current) == len(wanted)
            and all(covers(w, c) for w, c in zip(wanted, current, strict=True))
        )
    return bool(wanted == current)


def plan_profile(plan: Plan, graph: Graph, page_id: str, token: Token, profile: dict[str, Any]) -> None:
    """The Page's Messenger profile: one GET for every managed property, one POST, one DELETE at most."""
    managed = list(profile)
    if not managed:
        return
    try:
        answer = graph.get("me/messenger_profile", token, PROFILE_RATE_LIMIT, fields=",".join(managed))
    except ConnectError as exc:
        plan.add([failed(f"Page {page_id}: Messenger profile", exc)])
        return
    data = (answer or {}).get("data") or [{}]
    current = data[0] if isinstance(data[0], dict) else {}
    to_set: dict[str, Any] = {}
    to_delete: list[str] = []
    set_items: list[Item] = []
    delete_items: list[Item] = []
    for key in managed:
        name = f"Page {page_id}: Messenger profile {key}"
        wanted, now = profile[key], current.get(key)
        item = Item(name, State.IN_SYNC, shown(now), shown(wanted) if wanted is not None else "(removed)")
        plan.items.append(item)
        if wanted is None and now is not None:
            item.state = State.CHANGE
            to_delete.append(key)
            delete_items.append(item)
        elif wanted is not None and not covers(wanted, now):
            item.state = State.CHANGE
            to_set[key] = wanted
            set_items.append(item)
    if to_set:
        label = f"Page {page_id}: Messenger profile ({', '.join(to_set)})"
        plan.steps.append(
            Step(
                label,
                set_items,
                lambda: graph.send_json("POST", "me/messenger_profile", token, to_set, PROFILE_RATE_LIMIT),
            )
        )
    if to_delete:
        label = f"Page {page_id}: Messenger profile, remove {', '.join(to_delete)}"
        body = {"fields": to_delete}
        plan.steps.append(
            Step(
                label,
                delete_items,
                lambda: graph.send_json("DELETE", "me/messenger_profile", token, body, PROFILE_RATE_LIMIT),
            )
        )


# -- Vonage -----------------------------------------------------------------------------------------------


def plan_vonage(plan: Plan, applications: Applications, application_id: str, inbound_url: str, status_url: str) -> None:
    """The Vonage application's Messages webhooks: inbound and status URLs (POST), webhook version v1."""
    name = "Vonage application (the secret's application_id): Messages webhooks"
    try:
        application = applications.get(application_id)
    except ConnectError as exc:
        plan.add([failed(name, exc)])
        return
    now, wanted = messages_webhooks(application), wanted_webhooks(inbound_url, status_url)

    def text(hooks: dict[str, str | None]) -> str:
        if hooks["inbound"] is None and hooks["status"] is None:
            return "no Messages webhooks"
        inbound, status = hooks["inbound"] or "(not set)", hooks["status"] or "(not set)"
        return f"inbound {inbound}; status {status}; version {hooks['version']}"

    if now == wanted:
        plan.add([Item(name, State.IN_SYNC, text(now), text(wanted))])
        return
    item = Item(name, State.CHANGE, text(now), text(wanted))
    body = update_body(application, inbound_url, status_url)
    plan.add([item], Step(name, [item], lambda: applications.put(application_id, body)))
