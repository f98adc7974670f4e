"""Turn an inbound message into the reply messages.

`Responder` is the interface; `RuleResponder` the default: keyword/regex/payload/attachment rules tried
in order, then answers per kind (postback, quick reply, sticker, attachment), then a polite fallback.
Rules come from the JSON file named by RESPONDER_RULES_FILE (validated on the first invocation, with an
error naming the file and the rule), or the built-in `rules/default.json`. A relative name is looked up in
the `rules/` folder beside this module, which ships in the layer (so `example.json` works once deployed); an
absolute path is used as it is. A custom class is plugged in with RESPONDER_CLASS=package.module:ClassName
(see docs/replying.md).
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from messenger.errors import ConfigError
from messenger.messages import Button, Element, InboundMessage, OutgoingMessage, QuickReply, Template

ECHO_LIMIT = 300
TEMPLATE_FIELDS = ("text", "title", "payload", "attachment_type", "first_name")
RULES_DIR = Path(__file__).resolve().parent / "rules"


@runtime_checkable
class Responder(Protocol):
    def respond(self, message: InboundMessage) -> list[OutgoingMessage]: ...


def rules_path(name: str) -> Path:
    """Where RESPONDER_RULES_FILE points: an absolute path as it is, a relative name inside `rules/`."""
    path = Path(name)
    return path if path.is_absolute() else RULES_DIR / path


@cache
def default_rules() -> dict[str, Any]:
    """The built-in rules (`rules/default.json`), also the defaults of every section a rules file omits."""
    rules: dict[str, Any] = json.loads((RULES_DIR / "default.json").read_text(encoding="utf-8"))
    return rules


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply template: text may use {text}, {title}, {payload} and {attachment_type}."""

    text: str | None
    quick_replies: tuple[QuickReply, ...]
    attachment_url: str | None
    attachment_type: str | None
    template: Template | None = None
    notification_type: str | None = None
    handover: bool = False

    def render(self, fields: dict[str, str]) -> OutgoingMessage:
        text = self.text.format_map(_Fields(fields)) if self.text else None
        return OutgoingMessage(
            text=text,
            quick_replies=self.quick_replies,
            attachment_url=self.attachment_url,
            attachment_type=self.attachment_type,
            template=self.template,
            notification_type=self.notification_type,
            handover=self.handover,
        )


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    keywords: tuple[re.Pattern[str], ...]
    regex: re.Pattern[str] | None
    payloads: frozenset[str]
    attachment_types: frozenset[str]
    replies: tuple[Reply, ...]

    def matches(self, message: InboundMessage) -> bool:
        """A rule matches if any one of its conditions does."""
        text = message.text or ""
        if text and any(k.search(text) for k in self.keywords):
            return True
        if text and self.regex is not None and self.regex.search(text):
            return True
        payload = message.quick_reply_payload or message.postback_payload
        if payload is not None and payload in self.payloads:
            return True
        return bool(self.attachment_types.intersection(message.attachment_types))


def _reply(spec: Any, where: str) -> Reply:
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a reply must be an object")
    unknown = set(spec) - {"text", "quick_replies", "attachment", "template", "notification_type", "handover"}
    if unknown:
        raise ValueError(f"{where}: unknown reply keys {sorted(unknown)}")
    text = spec.get("text")
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: text must be a non-empty string")
        try:
            text.format_map(_Fields(dict.fromkeys(TEMPLATE_FIELDS, "x")))
        except (ValueError, IndexError, AttributeError) as exc:
            raise ValueError(f"{where}: bad placeholder in text ({exc})") from None
    quick = spec.get("quick_replies", [])
    if not isinstance(quick, list) or len(quick) > 13:
        raise ValueError(f"{where}: quick_replies must be a list of at most 13")
    quick_replies = []
    for q in quick:
        if not (isinstance(q, dict) and isinstance(q.get("title"), str) and isinstance(q.get("payload"), str)):
            raise ValueError(f"{where}: each quick reply needs a string title and payload")
        quick_replies.append(QuickReply(q["title"], q["payload"]))
    attachment = spec.get("attachment") or {}
    if not isinstance(attachment, dict):
        raise ValueError(f"{where}: attachment must be an object with type and url")
    if not isinstance(spec.get("handover", False), bool):
        raise ValueError(f"{where}: handover must be true or false")
    try:
        template = _template(spec["template"]) if "template" in spec else None
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{where}: invalid template ({exc})") from None
    reply = Reply(
        text,
        tuple(quick_replies),
        attachment.get("url"),
        attachment.get("type"),
        template,
        spec.get("notification_type"),
        spec.get("handover", False),
    )
    try:
        reply.render({})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return reply


def _template(spec: dict[str, Any]) -> Template:
    """{"type": "generic", "elements": [{"title", "subtitle", "image_url", "buttons": [...]}]} or
    {"type": "button", "text": ..., "buttons": [{"type": "postback", "title", "payload"}]}."""

    def buttons(items: list[dict[str, Any]]) -> tuple[Button, ...]:
        return tuple(Button(b["type"], b["title"], b.get("payload"), b.get("url")) for b in items)

    elements = tuple(
        Element(e["title"], e.get("subtitle"), e.get("image_url"), buttons(e.get("buttons", [])))
        for e in spec.get("elements", [])
    )
    return Template(spec["type"], spec.get("text"), elements, buttons(spec.get("buttons", [])))


def _replies(spec: dict[str, Any], where: str) -> tuple[Reply, ...]:
    if "replies" in spec:
        items = spec["replies"]
        if not isinstance(items, list) or not items:
            raise ValueError(f"{where}: replies must be a non-empty list")
        return tuple(_reply(item, f"{where}.replies[{i}]") for i, item in enumerate(items))
    if "reply" not in spec:
        raise ValueError(f"{where}: needs reply or replies")
    return (_reply(spec["reply"], f"{where}.reply"),)


def _strings(spec: dict[str, Any], key: str, where: str) -> list[str]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where}: {key} must be a list of non-empty strings")
    return value


def _rule(spec: Any, index: int) -> Rule:
    if not isinstance(spec, dict):
        raise ValueError(f"rules[{index}]: a rule must be an object")
    name = spec.get("name") or f"#{index}"
    where = f"rule {name!r} (rules[{index}])"
    unknown = set(spec) - {"name", "keywords", "regex", "payloads", "attachment_types", "reply", "replies"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    keywords = tuple(
        re.compile(rf"(?<!\w){re.escape(k.lower())}(?!\w)", re.IGNORECASE) for k in _strings(spec, "keywords", where)
    )
    regex = None
    if spec.get("regex") is not None:
        try:
            regex = re.compile(str(spec["regex"]), re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"{where}: invalid regex ({exc})") from None
    payloads = frozenset(_strings(spec, "payloads", where))
    attachment_types = frozenset(_strings(spec, "attachment_types", where))
    if not (keywords or regex or payloads or attachment_types):
        raise ValueError(f"{where}: needs at least one of keywords, regex, payloads, attachment_types")
    return Rule(name, keywords, regex, payloads, attachment_types, _replies(spec, where))


class RuleResponder:
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        defaults = default_rules()
        config = defaults if config is None else config
        if not isinstance(config, dict):
            raise ValueError("the rules file must hold a JSON object")
        rules = config.get("rules", [])
        if not isinstance(rules, list):
            raise ValueError("rules must be a list")
        self.rules = tuple(_rule(spec, i) for i, spec in enumerate(rules))
        fallback = config.get("fallback", defaults["fallback"])
        self.fallback = _reply(fallback, "fallback")
        self.postback = _reply(config.get("postback", defaults["postback"]), "postback")
        self.quick_reply = _reply(config.get("quick_reply", defaults["quick_reply"]), "quick_reply")
        self.sticker = _reply(config.get("sticker", defaults["sticker"]), "sticker")
        attachments = config.get("attachments", defaults["attachments"])
        if not isinstance(attachments, dict):
            raise ValueError("attachments must map attachment types to replies")
        self.attachments = {k: _reply(v, f"attachments.{k}") for k, v in attachments.items()}
        self.attachments.setdefault("default", _reply(defaults["attachments"]["default"], "attachments"))

    @classmethod
    def from_file(cls, path: str) -> RuleResponder:
        try:
            config = json.loads(rules_path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"RESPONDER_RULES_FILE {path!r} cannot be read ({type(exc).__name__})") from None
        except ValueError as exc:
            raise ConfigError(f"RESPONDER_RULES_FILE {path!r} is not valid JSON ({exc})") from None
        try:
            return cls(config)
        except ValueError as exc:
            raise ConfigError(f"RESPONDER_RULES_FILE {path!r}: {exc}") from None

    def respond(self, message: InboundMessage) -> list[OutgoingMessage]:
        fields = {
            "text": (message.text or "")[:ECHO_LIMIT],
            "title": message.postback_title or message.postback_payload or "",
            "payload": message.quick_reply_payload or message.postback_payload or "",
            "attachment_type": (message.attachment_types or [""])[0],
            "first_name": message.first_name or "",
        }
        for rule in self.rules:
            if rule.matches(message):
                return [reply.render(fields) for reply in rule.replies]
        return [self._by_kind(message).render(fields)]

    def _by_kind(self, message: InboundMessage) -> Reply:
        if message.kind == "postback":
            return self.postback
        if message.quick_reply_payload:
            return self.quick_reply
        if message.has_sticker:
            return self.sticker
        if message.attachments and not message.text:
            kind = message.attachment_types[0]
            return self.attachments.get(kind, self.attachments["default"])
        if not message.text:
            return self.attachments["default"]
        return self.fallback


def load_responder(rules_file: str | None = None, responder_class: str | None = None) -> Responder:
    """The configured responder. ConfigError (naming the file, rule or class) if it is unusable."""
    if responder_class:
        return _custom(responder_class, rules_file)
    if rules_file:
        return RuleResponder.from_file(rules_file)
    return RuleResponder()


def _custom(spec: str, rules_file: str | None) -> Responder:
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ConfigError(f"RESPONDER_CLASS must look like package.module:ClassName, got {spec!r}")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"RESPONDER_CLASS {spec!r} cannot be imported ({type(exc).__name__}: {exc})") from None
    factory = getattr(cls, "from_settings", None)
    instance = factory(rules_file=rules_file) if callable(factory) else cls()
    if not isinstance(instance, Responder):
        raise ConfigError(f"RESPONDER_CLASS {spec!r} has no respond(message) method")
    return instance
