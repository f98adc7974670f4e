"""Parse a verified Meta webhook body into normalised events: every entry, every messaging/standby item."""

from __future__ import annotations

import math
from typing import Any

from messenger.errors import BadRequestError
from messenger.models import Attachment, Event, Kind, Provider
from messenger.parsing import ident, load_json_object, obj, opt_int, opt_obj, opt_str, stable_id

HANDOVER_KEYS = ("pass_thread_control", "take_thread_control", "request_thread_control", "app_roles")
SIMPLE_KINDS = {
    "reaction": Kind.REACTION,
    "referral": Kind.REFERRAL,
    "optin": Kind.OPTIN,
    "account_linking": Kind.ACCOUNT_LINKING,
}


def parse_body(body: bytes) -> list[Event]:
    payload = load_json_object(body)
    if payload.get("object") != "page":
        raise BadRequestError("object must be 'page'")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise BadRequestError("entry must be a list")
    events: list[Event] = []
    for entry_value in entries:
        entry = obj(entry_value, "entry item")
        page_id = ident(entry.get("id"), "entry.id")
        entry_time = opt_int(entry.get("time"))
        for source in ("messaging", "standby"):
            items = entry.get(source, [])
            if not isinstance(items, list):
                raise BadRequestError(f"entry.{source} must be a list")
            for item in items:
                events.append(parse_event(page_id, obj(item, f"{source} item"), entry_time, source == "standby"))
    return events


def parse_event(page_id: str, item: dict[str, Any], entry_time: int | None, standby: bool) -> Event:
    sender = obj(item.get("sender"), "sender")
    recipient = obj(item.get("recipient"), "recipient")
    sender_id = ident(sender.get("id", sender.get("user_ref")), "sender.id")
    recipient_id = ident(recipient.get("id", recipient.get("user_ref")), "recipient.id")
    timestamp = opt_int(item.get("timestamp"))
    if timestamp is None:
        timestamp = entry_time
    if timestamp is None:
        raise BadRequestError("event timestamp missing")
    from_page = sender_id == page_id
    event = Event(
        provider=Provider.META,
        event_id="",
        kind=Kind.UNKNOWN,
        page_id=page_id,
        user_id=recipient_id if from_page else sender_id,
        timestamp_ms=timestamp,
        from_page=from_page,
        standby=standby,
        raw=item,
    )
    _classify(event, item)
    if not event.event_id:
        event.event_id = stable_id(page_id, event.kind, item)
    return event


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
    else:
        for key, kind in SIMPLE_KINDS.items():
            if key in item:
                event.kind = kind
                if kind is Kind.REACTION:
                    reaction = opt_obj(item[key])
                    event.reaction = opt_str(reaction.get("emoji")) or opt_str(reaction.get("reaction"))
                    event.reply_to_mid = opt_str(reaction.get("mid"))
                return


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
    app_id = message.get("app_id")
    event.app_id = str(app_id) if isinstance(app_id, int | str) and not isinstance(app_id, bool) else None
    attachments = message.get("attachments") or []
    if not isinstance(attachments, list):
        raise BadRequestError("message.attachments must be a list")
    event.attachments = [_attachment(obj(a, "attachment")) for a in attachments]


def _attachment(attachment: dict[str, Any]) -> Attachment:
    payload = opt_obj(attachment.get("payload"))
    coordinates = opt_obj(payload.get("coordinates"))
    sticker = payload.get("sticker_id")
    return Attachment(
        type=opt_str(attachment.get("type")) or "unknown",
        url=opt_str(payload.get("url")),
        title=opt_str(attachment.get("title")) or opt_str(payload.get("title")),
        sticker_id=str(sticker) if isinstance(sticker, int | str) and not isinstance(sticker, bool) else None,
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


def _handover_app_id(value: Any) -> str | None:
    data = opt_obj(value)
    for key in ("new_owner_app_id", "requested_owner_app_id", "previous_owner_app_id"):
        if isinstance(data.get(key), int | str) and not isinstance(data.get(key), bool):
            return str(data[key])
    return None
