"""Parse verified Vonage inbound and status callbacks (webhook versions v1 and v0.1) into events.

The envelope is `message_uuid`, `to` and `from` (and `status` on the status route): without them there is
nothing to key or route, and the callback is refused (400). Inside a valid envelope every callback is
stored: the message types we know are normalised, extra fields are kept in `raw`, and anything else (an
unknown `message_type`, another channel, a known type in a shape we cannot read) is kept raw as
Kind.UNKNOWN with the reason in `error`, never answered.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from messenger.errors import BadRequestError
from messenger.events import Attachment, Event, Kind, Provider
from messenger.parsing import ident, load_json_object, opt_obj, opt_str

MEDIA_TYPES = ("image", "audio", "video", "file")
# The Messenger inbound types of the Messages API; `unsupported` is a user's message Vonage cannot represent.
MESSAGE_TYPES = ("text", *MEDIA_TYPES, "unsupported")


def parse_inbound(body: bytes) -> Event:
    payload = load_json_object(body)
    message_uuid = ident(payload.get("message_uuid"), "message_uuid")
    version = "v0.1" if isinstance(payload.get("to"), dict) or isinstance(payload.get("message"), dict) else "v1"
    event = _inbound(payload, message_uuid, version)
    try:
        if version == "v1":
            _inbound_v1(event, payload)
        else:
            _inbound_content(event, opt_obj(payload.get("message")).get("content"), "type")
    except BadRequestError as exc:
        event = _inbound(payload, message_uuid, version)
        event.kind = Kind.UNKNOWN
        event.message_type = opt_str(payload.get("message_type"))
        event.error = {"code": "unparsed", "reason": str(exc)}
    return event


def parse_status(body: bytes) -> Event:
    payload = load_json_object(body)
    message_uuid = ident(payload.get("message_uuid"), "message_uuid")
    status = payload.get("status")
    if not isinstance(status, str) or not status:
        raise BadRequestError("status missing")
    version = "v0.1" if isinstance(payload.get("to"), dict) else "v1"
    channel = payload.get("channel")
    kind = Kind.STATUS if version == "v0.1" or channel in (None, "messenger") else Kind.UNKNOWN
    return Event(
        provider=Provider.VONAGE,
        event_id=f"{message_uuid}#status#{status}",
        # A status of another channel's message is kept, not applied to any outbound message of ours.
        kind=kind,
        # A status is about a message we sent: the Page is `from`, the user is `to`.
        page_id=_party(payload.get("from"), "from"),
        user_id=_party(payload.get("to"), "to"),
        timestamp_ms=_timestamp_ms(payload.get("timestamp")) or int(time.time() * 1000),
        provider_time=_timestamp_ms(payload.get("timestamp")) is not None,
        from_page=True,
        status=status.lower(),
        error=_error(payload.get("error")) if kind is Kind.STATUS else _channel_error(channel),
        mids=[message_uuid],
        payload_version=version,
        raw=payload,
    )


def _channel_error(channel: Any) -> dict[str, Any]:
    return {"code": "unparsed", "reason": f"channel {str(channel)[:40]!r} is not messenger"}


def _inbound_v1(event: Event, payload: dict[str, Any]) -> None:
    channel = payload.get("channel")
    if channel is not None and channel != "messenger":
        raise BadRequestError(_channel_error(channel)["reason"])
    _inbound_content(event, payload, "message_type")


def _inbound_content(event: Event, content: Any, type_key: str) -> None:
    """The message fields live at the top level in v1 and under `message.content` in v0.1."""
    content = opt_obj(content)
    message_type = content.get(type_key)
    if not isinstance(message_type, str) or not message_type:
        raise BadRequestError(f"{type_key} missing")
    event.message_type = message_type
    if message_type not in MESSAGE_TYPES:
        event.kind = Kind.UNKNOWN  # a type we do not know is stored, never answered
    elif message_type == "text":
        event.text = _text(content.get("text"))
    elif message_type in MEDIA_TYPES:
        event.attachments = [_media(message_type, content.get(message_type))]


def _inbound(payload: dict[str, Any], message_uuid: str, version: str) -> Event:
    return Event(
        provider=Provider.VONAGE,
        event_id=message_uuid,
        kind=Kind.MESSAGE,
        page_id=_party(payload.get("to"), "to"),
        user_id=_party(payload.get("from"), "from"),
        timestamp_ms=_timestamp_ms(payload.get("timestamp")) or int(time.time() * 1000),
        provider_time=_timestamp_ms(payload.get("timestamp")) is not None,
        payload_version=version,
        raw=payload,
    )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequestError("text missing")
    return value


def _media(message_type: str, value: Any) -> Attachment:
    media = opt_obj(value)
    url = opt_str(media.get("url"))
    if url is None:
        raise BadRequestError(f"{message_type}.url missing")
    return Attachment(
        type=message_type, url=url, caption=opt_str(media.get("caption")), name=opt_str(media.get("name"))
    )


def _party(value: Any, what: str) -> str:
    """v1 sends plain ids; v0.1 sends {type, id} objects."""
    if isinstance(value, dict):
        return ident(value.get("id"), f"{what}.id")
    return ident(value, what)


def _error(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    code = value.get("code", value.get("title"))
    reason = value.get("reason", value.get("detail"))
    return {"code": str(code) if code is not None else None, "reason": opt_str(reason)}


def _timestamp_ms(value: Any) -> int | None:
    """Vonage writes both ISO 8601 and `YYYY-MM-DD hh:mm:ss UTC`; None for a missing or unknown form."""
    if isinstance(value, str) and value:
        text = value.strip().replace(" UTC", "+00:00").replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return int(parsed.timestamp() * 1000)
    return None
