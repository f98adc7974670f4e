"""Parse verified Vonage inbound and status callbacks (webhook versions v1 and v0.1) into events."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from messenger.errors import BadRequestError
from messenger.models import Attachment, Event, Kind, Provider
from messenger.parsing import ident, load_json_object, opt_obj, opt_str

MEDIA_TYPES = ("image", "audio", "video", "file")
STATUSES = ("submitted", "delivered", "read", "rejected", "undeliverable")


def parse_inbound(body: bytes) -> Event:
    payload = load_json_object(body)
    message_uuid = ident(payload.get("message_uuid"), "message_uuid")
    if "message_type" in payload or "channel" in payload:
        return _inbound_v1(payload, message_uuid)
    if isinstance(payload.get("message"), dict):
        return _inbound_v01(payload, message_uuid)
    raise BadRequestError("neither a v1 nor a v0.1 inbound message")


def parse_status(body: bytes) -> Event:
    payload = load_json_object(body)
    message_uuid = ident(payload.get("message_uuid"), "message_uuid")
    status = payload.get("status")
    if not isinstance(status, str) or not status:
        raise BadRequestError("status missing")
    version = "v0.1" if isinstance(payload.get("to"), dict) else "v1"
    if version == "v1":
        _require_messenger(payload)
    return Event(
        provider=Provider.VONAGE,
        event_id=f"{message_uuid}#status#{status}",
        kind=Kind.STATUS,
        # A status is about a message we sent: the Page is `from`, the user is `to`.
        page_id=_party(payload.get("from"), "from"),
        user_id=_party(payload.get("to"), "to"),
        timestamp_ms=_timestamp_ms(payload.get("timestamp")),
        from_page=True,
        status=status.lower(),
        error=_error(payload.get("error")),
        mids=[message_uuid],
        payload_version=version,
        raw=payload,
    )


def _require_messenger(payload: dict[str, Any]) -> None:
    channel = payload.get("channel")
    if channel is not None and channel != "messenger":
        raise BadRequestError("channel must be 'messenger'")


def _inbound_v1(payload: dict[str, Any], message_uuid: str) -> Event:
    _require_messenger(payload)
    return _inbound_content(payload, payload, "message_type", message_uuid, "v1")


def _inbound_v01(payload: dict[str, Any], message_uuid: str) -> Event:
    content = opt_obj(payload["message"].get("content"))
    return _inbound_content(payload, content, "type", message_uuid, "v0.1")


def _inbound_content(payload: dict[str, Any], content: dict[str, Any], type_key: str, message_uuid: str,
                     version: str) -> Event:
    """The message fields live at the top level in v1 and under `message.content` in v0.1."""
    message_type = content.get(type_key)
    if not isinstance(message_type, str) or not message_type:
        raise BadRequestError(f"{type_key} missing")
    event = _inbound(payload, message_uuid, message_type, version)
    if message_type == "text":
        event.text = _text(content.get("text"))
    elif message_type in MEDIA_TYPES:
        event.attachments = [_media(message_type, content.get(message_type))]
    return event


def _inbound(payload: dict[str, Any], message_uuid: str, message_type: str, version: str) -> Event:
    return Event(
        provider=Provider.VONAGE,
        event_id=message_uuid,
        kind=Kind.MESSAGE,
        page_id=_party(payload.get("to"), "to"),
        user_id=_party(payload.get("from"), "from"),
        timestamp_ms=_timestamp_ms(payload.get("timestamp")),
        message_type=message_type,
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


def _timestamp_ms(value: Any) -> int:
    """Vonage writes both ISO 8601 and `YYYY-MM-DD hh:mm:ss UTC`; unknown forms fall back to now."""
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
    return int(time.time() * 1000)
