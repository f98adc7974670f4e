"""`make connect`'s profile file: Meta's documented limits refused before any call, and every postback the
shipped profile can send answered by a default rule of its own."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from devkit.messenger_profile import PROFILE_FILE, ProfileError, load_profile, offers, profile_problems
from messenger.messages import InboundMessage
from messenger.reply.responder import RuleResponder
from tools.connect.plan import covers

SHIPPED = json.loads(PROFILE_FILE.read_text(encoding="utf-8"))


def menu(*items: dict[str, Any], locale: str = "default", **extra: Any) -> list[dict[str, Any]]:
    return [{"locale": locale, "call_to_actions": list(items), **extra}]


def postback(title: str = "Help", payload: str = "HELP") -> dict[str, Any]:
    return {"type": "postback", "title": title, "payload": payload}


def breakers(count: int) -> list[dict[str, Any]]:
    return [
        {"locale": "default", "call_to_actions": [{"question": f"Q{i}?", "payload": f"P{i}"} for i in range(count)]}
    ]


def test_the_shipped_profile_is_within_every_limit() -> None:
    assert load_profile() == SHIPPED
    assert profile_problems(SHIPPED) == []


@pytest.mark.parametrize(
    ("profile", "words"),
    [
        ({"get_started": {"payload": "x" * 1001}}, "get_started.payload has 1001 characters; Meta's limit is 1000"),
        ({"get_started": {"payload": ""}}, "get_started.payload must be a non-empty string"),
        (
            {"greeting": [{"locale": "default", "text": "x" * 161}]},
            "greeting[0].text has 161 characters; Meta's limit is 160",
        ),
        ({"greeting": [{"locale": "en_US", "text": "Hi"}]}, "greeting needs an entry with locale 'default'"),
        ({"greeting": [{"locale": "english", "text": "Hi"}]}, "greeting[0].locale must be 'default' or a locale"),
        (
            {"greeting": [{"locale": "default", "text": "a"}, {"locale": "default", "text": "b"}]},
            "each locale may appear once",
        ),
        ({"ice_breakers": breakers(5)}, "ice_breakers[0] has 5 questions; Meta allows at most 4"),
        ({"ice_breakers": [{"question": "Q?", "payload": "P"}]}, "ice_breakers needs an entry with locale 'default'"),
        (
            {"ice_breakers": [{"locale": "default", "call_to_actions": [{"question": "Q?"}]}]},
            "payload must be a non-empty",
        ),
        (
            {"get_started": {"payload": "G"}, "persistent_menu": menu(*[postback()] * 21)},
            "persistent_menu[0] has 21 items; Meta allows at most 20",
        ),
        (
            {"get_started": {"payload": "G"}, "persistent_menu": menu(postback(title="x" * 31))},
            "title has 31 characters; Meta's limit is 30",
        ),
        (
            {"get_started": {"payload": "G"}, "persistent_menu": menu(postback(payload="x" * 1001))},
            "payload has 1001 characters; Meta's limit is 1000",
        ),
        (
            {"get_started": {"payload": "G"}, "persistent_menu": menu({"type": "nested", "title": "More"})},
            "nested menus were removed",
        ),
        (
            {"get_started": {"payload": "G"}, "persistent_menu": menu({"type": "web_url", "title": "Shop"})},
            ".url must be an http(s) URL",
        ),
        (
            {
                "get_started": {"payload": "G"},
                "persistent_menu": [{"locale": "default", "composer_input_disabled": True}],
            },
            "required with composer_input_disabled",
        ),
        ({"persistent_menu": menu(postback())}, "persistent_menu needs get_started"),
        (
            {"whitelisted_domains": [f"https://d{i}.example.com" for i in range(51)]},
            "51 domains; Meta allows at most 50",
        ),
        ({"whitelisted_domains": ["http://shop.example.com"]}, "must be an https URL with a fully qualified domain"),
        ({"whitelisted_domains": ["https://127.0.0.1"]}, "must be an https URL with a fully qualified domain"),
        ({"whitelisted_domains": ["https://localhost"]}, "must be an https URL with a fully qualified domain"),
        ({"home_url": {"url": "https://x.example.com"}}, "unknown property 'home_url'"),
        ({"get_started": {"payload": "G", "title": "Go"}}, "get_started: unknown key 'title'"),
    ],
)
def test_what_meta_would_refuse_is_refused_before_any_call(profile: dict[str, Any], words: str) -> None:
    problems = profile_problems(profile)
    assert any(words in problem for problem in problems), problems


def test_a_profile_within_the_limits_at_their_edges_passes() -> None:
    profile = {
        "get_started": {"payload": "x" * 1000},
        "greeting": [{"locale": "default", "text": "x" * 160}, {"locale": "fr_FR", "text": "Bonjour"}],
        "ice_breakers": breakers(4),
        "persistent_menu": menu(
            *[postback(title="x" * 30, payload="y" * 1000)] * 19,
            {"type": "web_url", "title": "Shop", "url": "https://shop.example.com"},
        ),
        "whitelisted_domains": [f"https://d{i}.example.com" for i in range(50)],
    }
    assert profile_problems(profile) == []
    # A menu may rely on the Page's existing Get Started button, and a property set to null is removed
    assert profile_problems({"persistent_menu": menu(postback())}, has_get_started=True) == []
    assert profile_problems({"whitelisted_domains": None}) == []


def test_load_profile_names_the_file_and_every_problem(tmp_path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"get_started": {"payload": ""}, "ice_breakers": breakers(6)}))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    text = str(caught.value)
    assert text.startswith("profile.json:") and "get_started.payload" in text and "6 questions" in text
    path.write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_profile(path)
    with pytest.raises(ProfileError, match="cannot be read"):
        load_profile(tmp_path / "missing.json")


def test_every_postback_the_profile_can_send_has_a_default_rule_of_its_own() -> None:
    # Given the shipped profile and the default rules
    responder = RuleResponder()
    found = offers(SHIPPED)
    # Then the walk finds the Get Started button, every ice breaker and every menu postback
    sources = {offer.source for offer in found}
    assert {"get_started", "ice_breakers[default]", "persistent_menu[default]"} <= sources
    breakers_and_items = sum(len(m["call_to_actions"]) for m in SHIPPED["ice_breakers"] + SHIPPED["persistent_menu"])
    assert len(found) == 1 + breakers_and_items
    for offer in found:
        # When a person taps it, Meta sends a postback with its title and payload
        tap = InboundMessage(
            "meta",
            "m1",
            "postback",
            "page",
            "user",
            "meta#page#user",
            0,
            postback_title=offer.title,
            postback_payload=offer.payload,
        )
        # Then a rule of its own answers, not the generic "you chose" catch-all
        matching = [rule.name for rule in responder.rules if rule.matches(tap)]
        assert matching, f"{offer.source} {offer.payload!r}: no default rule answers it"
        assert responder.respond(tap)[0].text


def test_a_profile_payload_without_a_rule_is_caught_by_the_walk() -> None:
    profile = copy.deepcopy(SHIPPED)
    profile["ice_breakers"][0]["call_to_actions"].append({"question": "Refund?", "payload": "REFUND"})
    responder = RuleResponder()
    orphans = [
        offer.payload
        for offer in offers(profile)
        if not any(
            rule.matches(InboundMessage("meta", "m", "postback", "p", "u", "c", 0, postback_payload=offer.payload))
            for rule in responder.rules
        )
    ]
    assert orphans == ["REFUND"]


@pytest.mark.parametrize(
    ("wanted", "current", "expected"),
    [
        ({"payload": "A"}, {"payload": "A"}, True),
        ({"payload": "A"}, {"payload": "B"}, False),
        ({"payload": "A"}, None, False),
        (
            [{"locale": "default", "call_to_actions": [1, 2]}],
            [{"locale": "default", "call_to_actions": [1, 2], "extra": 1}],
            True,
        ),
        ([{"call_to_actions": [1, 2]}], [{"call_to_actions": [2, 1]}], False),
        ([{"call_to_actions": [1, 2]}], [{"call_to_actions": [1]}], False),
        ({"composer_input_disabled": False}, {}, True),
        ({"composer_input_disabled": True}, {}, False),
    ],
)
def test_covers_ignores_what_meta_adds_but_not_what_it_changes(wanted: Any, current: Any, expected: bool) -> None:
    assert covers(wanted, current) is expected
