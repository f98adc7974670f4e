"""The Send API's documented limits for a message, and one check of a message against them.

The reply side checks every planned request with `message_problems` before sending (a bad rule or
responder fails permanently, with the reasons, and nothing is sent); the local sandbox's Graph endpoint
refuses the same messages with Meta's error 100. Each figure and its source: docs/messenger-coverage.md.
"""

from __future__ import annotations

from typing import Any

# Send API reference, message.text: "Must be UTF-8 and has a 2000 character limit". ARCHITECTURE.md (and
# our spec) split "below 2,000", so a chunk is at most TEXT_MAX characters.
TEXT_MAX = 1999
METADATA_MAX = 1000  # message.metadata: "1000 character limit"
MAX_QUICK_REPLIES = 13  # quick_replies: "A maximum of 13 quick replies are supported"
QUICK_REPLY_TITLE_MAX = 20  # quick_reply.title: "20 character limit"
PAYLOAD_MAX = 1000  # quick_reply.payload and postback button payload: "1000 character limit"
QUICK_REPLY_TYPES = frozenset({"text", "user_phone_number", "user_email"})
BUTTON_TITLE_MAX = 20  # buttons: "Button title. 20 character limit."
MAX_BUTTONS = 3  # button template: "Set of 1-3 buttons"; generic element: up to three buttons
BUTTON_TEXT_MAX = 640  # button template text: "UTF-8-encoded text of up to 640 characters"
MAX_ELEMENTS = 10  # generic template elements: "Maximum of 10 elements"
ELEMENT_TITLE_MAX = 80  # element title: "80 character limit"
ELEMENT_SUBTITLE_MAX = 80  # element subtitle: "80 character limit"
ELEMENT_EXTRAS = ("subtitle", "image_url", "default_action", "buttons")  # "At least one ... in addition to title"
BUTTON_TYPES = frozenset({"web_url", "postback", "phone_number"})
ATTACHMENT_TYPES = frozenset({"audio", "file", "image", "video", "template"})
TEMPLATE_TYPES = frozenset({"button", "generic"})


def message_problems(message: Any) -> list[str]:
    """Why Meta would refuse this `message` object with error 100 (empty when it is within every limit)."""
    if not isinstance(message, dict):
        return ["message must be an object"]
    problems: list[str] = []
    if ("text" in message) == ("attachment" in message):
        problems.append("message must have exactly one of text and attachment")
    if "text" in message:
        problems += _text("message[text]", message["text"], TEXT_MAX)
    if "attachment" in message:
        problems += _attachment(message["attachment"])
    if "quick_replies" in message:
        problems += _quick_replies(message["quick_replies"])
    if "metadata" in message:
        problems += _text("message[metadata]", message["metadata"], METADATA_MAX)
    return problems


def _text(name: str, value: Any, limit: int, required: bool = True) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, str) or not value:
        return [f"{name} must be a non-empty string"]
    if len(value) > limit:
        return [f"{name} has {len(value)} characters; the limit is {limit}"]
    return []


def _url(name: str, value: Any) -> list[str]:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        return [f"{name} must be an http(s) URL"]
    return []


def _quick_replies(replies: Any) -> list[str]:
    if not isinstance(replies, list) or not 1 <= len(replies) <= MAX_QUICK_REPLIES:
        count = len(replies) if isinstance(replies, list) else "not a list"
        return [f"message[quick_replies] must hold 1 to {MAX_QUICK_REPLIES} quick replies ({count})"]
    problems: list[str] = []
    for index, reply in enumerate(replies):
        name = f"message[quick_replies][{index}]"
        if not isinstance(reply, dict) or reply.get("content_type") not in QUICK_REPLY_TYPES:
            problems.append(f"{name}[content_type] must be one of {sorted(QUICK_REPLY_TYPES)}")
            continue
        if reply["content_type"] != "text":
            continue
        # title is required unless image_url is set; payload may then be empty.
        has_image = "image_url" in reply
        if has_image:
            problems += _url(f"{name}[image_url]", reply["image_url"])
        if not (has_image and reply.get("title") in (None, "")):
            problems += _text(f"{name}[title]", reply.get("title"), QUICK_REPLY_TITLE_MAX)
        payload = reply.get("payload")
        if isinstance(payload, int | float) and not isinstance(payload, bool):
            payload = str(payload)
        if not (has_image and payload == ""):
            problems += _text(f"{name}[payload]", payload, PAYLOAD_MAX)
    return problems


def _attachment(attachment: Any) -> list[str]:
    if not isinstance(attachment, dict) or attachment.get("type") not in ATTACHMENT_TYPES:
        return [f"message[attachment][type] must be one of {sorted(ATTACHMENT_TYPES)}"]
    payload = attachment.get("payload")
    if not isinstance(payload, dict):
        return ["message[attachment][payload] must be an object"]
    if attachment["type"] == "template":
        return _template(payload)
    if "attachment_id" in payload:
        return (
            []
            if isinstance(payload["attachment_id"], str | int)
            else ["message[attachment][payload][attachment_id] must be an id"]
        )
    return _url("message[attachment][payload][url]", payload.get("url"))


def _template(payload: dict[str, Any]) -> list[str]:
    kind = payload.get("template_type")
    if kind not in TEMPLATE_TYPES:
        return [f"template_type must be one of {sorted(TEMPLATE_TYPES)}"]
    if kind == "button":
        return _text("button template text", payload.get("text"), BUTTON_TEXT_MAX) + _buttons(
            "button template", payload.get("buttons"), required=True
        )
    elements = payload.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ELEMENTS:
        count = len(elements) if isinstance(elements, list) else "not a list"
        return [f"a generic template needs 1 to {MAX_ELEMENTS} elements ({count})"]
    problems: list[str] = []
    for index, element in enumerate(elements):
        name = f"element {index}"
        if not isinstance(element, dict):
            problems.append(f"{name} must be an object")
            continue
        problems += _text(f"{name} title", element.get("title"), ELEMENT_TITLE_MAX)
        problems += _text(f"{name} subtitle", element.get("subtitle"), ELEMENT_SUBTITLE_MAX, required=False)
        if not any(element.get(key) for key in ELEMENT_EXTRAS):
            problems.append(f"{name} needs at least one of {', '.join(ELEMENT_EXTRAS)} besides its title")
        if "image_url" in element:
            problems += _url(f"{name} image_url", element["image_url"])
        if "buttons" in element:
            problems += _buttons(name, element["buttons"], required=False)
    return problems


def _buttons(name: str, buttons: Any, *, required: bool) -> list[str]:
    low = 1 if required else 0
    if not isinstance(buttons, list) or not low <= len(buttons) <= MAX_BUTTONS:
        count = len(buttons) if isinstance(buttons, list) else "not a list"
        return [f"{name} needs {low} to {MAX_BUTTONS} buttons ({count})"]
    problems: list[str] = []
    for index, button in enumerate(buttons):
        where = f"{name} button {index}"
        if not isinstance(button, dict) or button.get("type") not in BUTTON_TYPES:
            problems.append(f"{where} type must be one of {sorted(BUTTON_TYPES)}")
            continue
        problems += _text(f"{where} title", button.get("title"), BUTTON_TITLE_MAX)
        if button["type"] == "web_url":
            problems += _url(f"{where} url", button.get("url"))
        elif button["type"] == "postback":
            problems += _text(f"{where} payload", button.get("payload"), PAYLOAD_MAX)
        elif not isinstance(button.get("payload"), str) or not button["payload"].startswith("+"):
            problems.append(f"{where} payload must be a phone number starting with +")
    return problems
