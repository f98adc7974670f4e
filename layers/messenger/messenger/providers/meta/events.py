"""Parse a verified Meta webhook body into normalised events: every entry, every messaging/standby item.

Only the envelope can refuse a POST (not JSON, `object` not `page`, `entry` not a list, more than
MAX_EVENTS_PER_POST events). Inside it every item becomes an Event: the kinds we know are normalised, and
anything else, or a known kind in a shape we cannot read, is kept raw as Kind.UNKNOWN with the reason in
`error`, so one odd event never costs its neighbours (Meta redelivers a refused batch whole).

Events without a user (see docs/messenger-coverage.md):
- a checkbox-plugin opt-in has no `sender`; its user is `optin.user_ref` (the Send API accepts it as
  `recipient.user_ref`), so the conversation is `meta#<page>#<user_ref>`;
- Page-level events (`app_roles`, `policy_enforcement`) have only the Page: user PAGE_LEVEL_USER;
- an entry without a usable `id` files its events under UNKNOWN_PAGE, as unknown events.
"""

from __future__ import annotations

import math
import time
from typing import Any

from messenger.errors import BadRequestError, PayloadTooLargeError
from messenger.events import Attachment, Event, Kind, Provider
from messenger.parsing import epoch_ms, load_json_object, obj, opt_int, opt_obj, opt_str, stable_id

# Meta batches "a maximum of 1000 updates" per POST (Graph API webhooks, "Batching"); each messaging/standby
# item is one update. More than that is no batch Meta sends: refused with 413 before anything is stored.
MAX_EVENTS_PER_POST = 1000
PAGE_LEVEL_USER = "_page"
UNKNOWN_PAGE = "_unknown"
HANDOVER_KEYS = ("pass_thread_control", "take_thread_control", "request_thread_control", "app_roles")
# `policy_enforcement` today; older reference pages spell it `policy-enforcement`.
POLICY_KEYS = ("policy_enforcement", "policy-enforcement")
SIMPLE_KINDS = {
    "reaction": Kind.REACTION,
    "referral": Kind.REFERRAL,
    "optin": Kind.OPTIN,
    "account_linking": Kind.ACCOUNT_LINKING,
}
ENVELOPE_KEYS = frozenset({"sender", "recipient", "timestamp"})
# Kinds that are about the Page, not about one person: they may come without a sender.
PAGE_LEVEL_KINDS = frozenset({Kind.POLICY_ENFORCEMENT})
SOURCES = ("messaging", "standby")


def parse_body(body: bytes, max_events: int = MAX_EVENTS_PER_POST, now_ms: int | None = None) -> list[Event]:
    payload = load_json_object(body)
    if payload.get("object") != "page":
        raise BadRequestError("object must be 'page'")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise BadRequestError("entry must be a list")
    count = count_updates(entries)
    if count > max_events:
        raise PayloadTooLargeError(f"{count} events in one POST; at most {max_events} are accepted")
    received_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    events: list[Event] = []
    for entry in entries:
        events.extend(_entry_events(entry, received_ms))
    return events


def count_updates(entries: list[Any]) -> int:
    """How many events the entries hold (an entry that is not an object counts as one odd event)."""
    count = 0
    for entry in entries:
        if not isinstance(entry, dict):
            count += 1
            continue
        for source in SOURCES:
            items = entry.get(source)
            count += len(items) if isinstance(items, list) else int(items is not None)
    return count


def _entry_events(entry: Any, received_ms: int) -> list[Event]:
    if not isinstance(entry, dict):
        event = _unknown(UNKNOWN_PAGE, {"entry": entry}, received_ms, "entry is not an object")
        event.provider_time = False
        return [event]
    page_id = _ident(entry.get("id"))
    entry_time = epoch_ms(entry.get("time"))
    events: list[Event] = []
    for source in SOURCES:
        items = entry.get(source)
        if items is None:
            continue
        if not isinstance(items, list):
            raw = {"id": entry.get("id"), source: items}
            event = _unknown(page_id or UNKNOWN_PAGE, raw, entry_time or received_ms, f"entry.{source} is not a list")
            event.provider_time = entry_time is not None
            events.append(event)
            continue
        for item in items:
            timestamp = entry_time if entry_time is not None else received_ms
            if page_id is None:
                event = _unknown(UNKNOWN_PAGE, _as_object(item), timestamp, "entry.id missing")
            else:
                event = parse_event(page_id, item, timestamp, source == "standby")
            event.provider_time = entry_time is not None or epoch_ms(_as_object(item).get("timestamp")) is not None
            events.append(event)
    return events


def parse_event(page_id: str, item: Any, default_ms: int, standby: bool) -> Event:
    """One messaging/standby item. Never raises for the item's shape: what we cannot read is UNKNOWN."""
    if not isinstance(item, dict):
        return _unknown(
            page_id,
            {"item": item},
            default_ms,
            f"{'standby' if standby else 'messaging'} item is not an object",
            standby,
        )
    sender = opt_obj(item.get("sender"))
    recipient = opt_obj(item.get("recipient"))
    sender_id = _ident(sender.get("id")) or _ident(sender.get("user_ref"))
    recipient_id = _ident(recipient.get("id")) or _ident(recipient.get("user_ref"))
    timestamp = epoch_ms(item.get("timestamp"))
    from_page = sender_id is not None and sender_id == page_id
    user_id = recipient_id if from_page else sender_id
    if user_id is None:
        # A checkbox-plugin opt-in names its user only as optin.user_ref; Page-level events name nobody.
        user_id = _ident(opt_obj(item.get("optin")).get("user_ref")) or PAGE_LEVEL_USER
    event = _event(page_id, user_id, timestamp if timestamp is not None else default_ms, item, standby, from_page)
    try:
        _classify(event, item)
        if event.user_id == PAGE_LEVEL_USER and not _page_level(event):
            raise BadRequestError("event has no sender")
    except BadRequestError as exc:
        event = _event(page_id, user_id, event.timestamp_ms, item, standby, from_page)
        event.message_type = _event_key(item)
        event.error = {"code": "unparsed", "reason": str(exc)}
    if not event.event_id:
        event.event_id = stable_id(page_id, event.kind, item)
    return event


def _event(
    page_id: str, user_id: str, timestamp_ms: int, item: dict[str, Any], standby: bool, from_page: bool
) -> Event:
    return Event(
        provider=Provider.META,
        event_id="",
        kind=Kind.UNKNOWN,
        page_id=page_id,
        user_id=user_id,
        timestamp_ms=timestamp_ms,
        from_page=from_page,
        standby=standby,
        raw=item,
    )


def _unknown(page_id: str, raw: dict[str, Any], timestamp_ms: int, reason: str, standby: bool = False) -> Event:
    event = _event(page_id, PAGE_LEVEL_USER, timestamp_ms, raw, standby, False)
    event.error = {"code": "unparsed", "reason": reason}
    event.event_id = stable_id(page_id, Kind.UNKNOWN, raw)
    return event


def _page_level(event: Event) -> bool:
    return event.kind in PAGE_LEVEL_KINDS or (event.kind is Kind.HANDOVER and event.message_type == "app_roles")


def _event_key(item: dict[str, Any]) -> str | None:
    """The key naming the event type (`message`, `message_edit`, ...): what is left besides the envelope."""
    return next((key for key in item if key not in ENVELOPE_KEYS), None)


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"item": value}


def _classify(event: Event, item: dict[str, Any]) -> None:
    if "message" in item:
        _message(event, obj(item["message"], "message"))
    elif "postback" in item:
        postback = obj(item["postback"], "postback")
        event.kind = Kind.POSTBACK
        event.postback_title = opt_str(postback.get("title"))
        event.postback_payload = opt_str(postback.get("payload"))
        event.event_id = _mid(postback) or ""
    elif "delivery" in item:
        delivery = obj(item["delivery"], "delivery")
        event.kind = Kind.DELIVERY
        event.watermark_ms = opt_int(delivery.get("watermark"))
        mids = delivery.get("mids")
        # Only a list names messages: a bare string or object must not be iterated into fake mids.
        event.mids = [m for m in mids if isinstance(m, str) and m] if isinstance(mids, list) else []
    elif "read" in item:
        event.kind = Kind.READ
        event.watermark_ms = opt_int(obj(item["read"], "read").get("watermark"))
    elif any(key in item for key in HANDOVER_KEYS):
        event.kind = Kind.HANDOVER
        key = next(key for key in HANDOVER_KEYS if key in item)
        event.message_type = key
        event.app_id = _handover_app_id(item[key])
        event.metadata = opt_str(opt_obj(item[key]).get("metadata"))
    elif any(key in item for key in POLICY_KEYS):
        policy = obj(item[next(key for key in POLICY_KEYS if key in item)], "policy_enforcement")
        event.kind = Kind.POLICY_ENFORCEMENT
        event.message_type = opt_str(policy.get("action"))  # warning | block | unblock
    else:
        _simple(event, item)


def _simple(event: Event, item: dict[str, Any]) -> None:
    for key, kind in SIMPLE_KINDS.items():
        if key in item:
            event.kind = kind
            if kind is Kind.REACTION:
                reaction = opt_obj(item[key])
                event.reaction = opt_str(reaction.get("emoji")) or opt_str(reaction.get("reaction"))
                event.reply_to_mid = opt_str(reaction.get("mid"))
            elif kind is Kind.OPTIN:
                event.message_type = opt_str(opt_obj(item[key]).get("type"))
            return
    event.message_type = _event_key(item)


def _message(event: Event, message: dict[str, Any]) -> None:
    mid = _mid(message)
    if mid is None:
        raise BadRequestError("message.mid missing")
    event.event_id = mid
    event.kind = Kind.ECHO if message.get("is_echo") is True or event.from_page else Kind.MESSAGE
    if event.kind is Kind.ECHO:
        event.from_page = True
    text = message.get("text")
    if text is not None and not isinstance(text, str):
        raise BadRequestError("message.text must be a string")
    event.text = text
    event.quick_reply_payload = opt_str(opt_obj(message.get("quick_reply")).get("payload"))
    event.reply_to_mid = opt_str(opt_obj(message.get("reply_to")).get("mid"))
    event.metadata = opt_str(message.get("metadata"))
    event.app_id = _ident(message.get("app_id"))
    attachments = message.get("attachments") or []
    if not isinstance(attachments, list):
        raise BadRequestError("message.attachments must be a list")
    event.attachments = [_attachment(obj(a, "attachment")) for a in attachments]


def _attachment(attachment: dict[str, Any]) -> Attachment:
    payload = opt_obj(attachment.get("payload"))
    coordinates = opt_obj(payload.get("coordinates"))
    return Attachment(
        type=opt_str(attachment.get("type")) or "unknown",
        url=opt_str(payload.get("url")),
        title=opt_str(attachment.get("title")) or opt_str(payload.get("title")),
        sticker_id=_ident(payload.get("sticker_id")),
        coordinates={k: f for k, v in coordinates.items() if (f := _coordinate(v)) is not None} or None,
    )


def _coordinate(value: Any) -> float | None:
    """A finite float, or None: a huge int would overflow float(), and inf/nan cannot be stored."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _mid(value: dict[str, Any]) -> str | None:
    mid = value.get("mid")
    return mid if isinstance(mid, str) and mid else None


def _ident(value: Any) -> str | None:
    """A provider id (Meta sends strings, sometimes numbers), or None."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def _handover_app_id(value: Any) -> str | None:
    data = opt_obj(value)
    for key in ("new_owner_app_id", "requested_owner_app_id", "previous_owner_app_id"):
        if (app_id := _ident(data.get(key))) is not None:
            return app_id
    return None
