"""The default RuleResponder, rule-file validation, and RESPONDER_CLASS plugging."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from messenger.errors import ConfigError
from messenger.messages import InboundMessage, OutgoingMessage
from messenger.reply.responder import RULES_DIR, Responder, RuleResponder, load_responder

EXAMPLE = Path(__file__).resolve().parents[2] / "layers/messenger/messenger/reply/rules/example.json"


def message(text: str | None = None, **fields) -> InboundMessage:
    return InboundMessage(
        "meta", "m1", fields.pop("kind", "message"), "page", "user", "meta#page#user", 0, text=text, **fields
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi!", "Hello!"),
        ("hello there", "Hello!"),
        ("I need help", "Here is what I can do"),
        ("thanks a lot", "welcome"),
        ("what are your opening hours?", "opening hours"),
        ("When do you close on Sunday?", "opening hours"),
        ("this is something else", "Thanks for your message: “this is something else”"),
    ],
)
def test_default_rules(text, expected):
    replies = RuleResponder().respond(message(text))
    assert len(replies) == 1 and expected in replies[0].text


def test_keywords_match_whole_words_only():
    # "this" contains "hi" but is not a greeting
    assert "Hello!" not in RuleResponder().respond(message("this"))[0].text


def test_defaults_for_postbacks_quick_replies_stickers_and_attachments():
    responder = RuleResponder()
    assert (
        "Get started"
        in responder.respond(message(kind="postback", postback_title="Get started", postback_payload="START"))[0].text
    )
    assert "BLUE" in responder.respond(message("Blue", quick_reply_payload="BLUE"))[0].text
    assert responder.respond(message(attachments=({"type": "image", "url": "u", "sticker_id": "369"},)))[0].text == "👍"
    assert "picture" in responder.respond(message(attachments=({"type": "image", "url": "u"},)))[0].text
    assert "attachment" in responder.respond(message(attachments=({"type": "file", "url": "u"},)))[0].text


def test_help_payload_from_a_quick_reply_matches_the_help_rule():
    replies = RuleResponder().respond(message("Help", quick_reply_payload="HELP"))
    assert "Here is what I can do" in replies[0].text and replies[0].quick_replies


def test_example_file_loads_and_answers(tmp_path):
    responder = RuleResponder.from_file(str(EXAMPLE))
    assert "Monday" in responder.respond(message("when are you open?"))[0].text
    assert len(responder.respond(message("where is my order #12345"))) == 2
    assert "document" in responder.respond(message(attachments=({"type": "file", "url": "u"},)))[0].text


def test_fallback_echo_does_not_interpret_user_braces():
    replies = RuleResponder().respond(message("{payload} {0} {text.__class__}"))
    assert "{payload} {0} {text.__class__}" in replies[0].text


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"rules": [{"name": "bad", "regex": "(", "reply": {"text": "x"}}]}, "rule 'bad' (rules[0]): invalid regex"),
        ({"rules": [{"name": "nothing", "reply": {"text": "x"}}]}, "rule 'nothing'"),
        ({"rules": [{"name": "noreply", "keywords": ["a"]}]}, "needs reply or replies"),
        (
            {"rules": [{"name": "qr", "keywords": ["a"], "reply": {"text": "x", "quick_replies": [{}] * 14}}]},
            "at most 13",
        ),
        ({"rules": [{"name": "tpl", "keywords": ["a"], "reply": {"text": "{oops"}}]}, "bad placeholder"),
        ({"rules": [{"name": "typo", "keyword": ["a"], "reply": {"text": "x"}}]}, "unknown keys"),
    ],
)
def test_invalid_rules_file_names_the_file_and_rule(tmp_path, config, fragment):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError) as info:
        load_responder(str(path))
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_unreadable_or_invalid_json_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_responder(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_responder(str(bad))


def test_custom_responder_class(monkeypatch):
    module = types.ModuleType("custom_responder_for_tests")

    class Echo:
        def respond(self, message: InboundMessage) -> list[OutgoingMessage]:
            return [OutgoingMessage(text=f"echo {message.text}")]

    module.Echo = Echo
    monkeypatch.setitem(sys.modules, "custom_responder_for_tests", module)
    responder = load_responder(None, "custom_responder_for_tests:Echo")
    assert isinstance(responder, Responder)
    assert responder.respond(message("x"))[0].text == "echo x"
    with pytest.raises(ConfigError, match="cannot be imported"):
        load_responder(None, "custom_responder_for_tests:Missing")
    with pytest.raises(ConfigError, match="package.module:ClassName"):
        load_responder(None, "no_colon")


def test_example_rules_file_offers_a_template_and_hands_over_on_contact():
    # Given the shipped example rules
    responder = load_responder(str(EXAMPLE))
    # When a user asks for the catalogue, then a generic template comes back (Meta renders it, Vonage as text)
    [catalogue] = responder.respond(message(text="show me your products"))
    assert catalogue.template is not None and catalogue.template.type == "generic"
    # When the user taps "Talk to us", then the reply asks the pipeline to hand the conversation over
    [contact] = responder.respond(message(text=None, quick_reply_payload="CONTACT"))
    assert contact.handover is True


def test_default_rules_hand_over_when_the_user_asks_for_a_person():
    [reply] = load_responder(None).respond(message(text="Can I talk to a real person?"))
    assert reply.handover is True and reply.text
    [other] = load_responder(None).respond(message(text="someone stole my parcel"))
    assert other.handover is False


def offered_payloads(config: dict) -> set[str]:
    """Every quick-reply and postback-button payload any reply of the rules offers the user."""
    replies = [r for rule in config.get("rules", []) for r in ([rule["reply"]] if "reply" in rule else rule["replies"])]
    payloads = set()
    for reply in replies:
        payloads |= {q["payload"] for q in reply.get("quick_replies", [])}
        template = reply.get("template") or {}
        buttons = template.get("buttons", []) + [b for e in template.get("elements", []) for b in e.get("buttons", [])]
        payloads |= {b["payload"] for b in buttons if b["type"] == "postback"}
    return payloads


@pytest.mark.parametrize("name", ["default.json", "example.json"])
def test_every_offered_quick_reply_and_postback_has_its_own_rule(name):
    # Given a shipped rules file
    config = json.loads((RULES_DIR / name).read_text(encoding="utf-8"))
    responder = RuleResponder(config)
    offered = offered_payloads(config)
    assert offered, "the walk must find something to tap"
    for payload in sorted(offered):
        # When the user taps it (as a quick reply, or as a postback button)
        for tap in (
            message(payload.title(), quick_reply_payload=payload),
            message(kind="postback", postback_title=payload.title(), postback_payload=payload),
        ):
            # Then a rule of its own answers, not the generic "noted" / "you chose" catch-all
            assert any(rule.matches(tap) for rule in responder.rules), f"{name}: nothing answers {payload}"


def test_a_relative_rules_file_name_is_found_in_the_shipped_rules_folder(tmp_path, monkeypatch):
    # Given the function runs from another working directory (as Lambda does, from /var/task)
    monkeypatch.chdir(tmp_path)
    # When RESPONDER_RULES_FILE names the shipped example by its bare name
    responder = load_responder("example.json")
    # Then the example's own rules answer
    assert "Monday" in responder.respond(message("when are you open?"))[0].text
    with pytest.raises(ConfigError, match="'missing.json' cannot be read"):
        load_responder("missing.json")
