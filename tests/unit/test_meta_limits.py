"""Meta Send API limits: every planned message is checked before sending; a bad reply fails permanently."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.messages import Button, Element, OutgoingMessage, QuickReply, Template
from messenger.policy import SendPolicy
from messenger.providers.meta import limits
from messenger.providers.meta.send import plan_messages
from messenger.sending import PermanentSendError

POLICY = SendPolicy("RESPONSE")


def plan(*replies: OutgoingMessage, metadata: str = "m") -> list[dict[str, Any]]:
    return plan_messages("psid", list(replies), POLICY, metadata)


def refused(*replies: OutgoingMessage, metadata: str = "m") -> str:
    # When the reply is planned / Then it fails permanently before any request, with the reason
    with pytest.raises(PermanentSendError) as caught:
        plan(*replies, metadata=metadata)
    assert caught.value.code == "meta_invalid_message"
    return caught.value.reason


@pytest.mark.parametrize("length", [1999, 2000, 2001, 4000, 5997])
def test_text_chunks_stay_below_2000_characters(length):
    # Given a text of exactly or around the limit, without whitespace to split at
    bodies = plan(OutgoingMessage(text="x" * length))
    # When planned / Then every chunk is below 2,000 characters and nothing is lost
    assert all(len(b["message"]["text"]) < 2000 for b in bodies)
    assert sum(len(b["message"]["text"]) for b in bodies) == length


def test_button_template_text_over_640_is_refused():
    # Given a button template with a 700-character text (Meta: "up to 640 characters")
    template = Template("button", text="t" * 700, buttons=(Button("postback", "Yes", payload="YES"),))
    assert "button template text has 700 characters; the limit is 640" in refused(OutgoingMessage(template=template))


def test_generic_element_with_only_a_title_is_refused():
    # Given a generic element with nothing but a title ("At least one property must be set in addition to title")
    reason = refused(OutgoingMessage(template=Template("generic", elements=(Element("Only a title"),))))
    assert "element 0 needs at least one of subtitle, image_url, default_action, buttons" in reason


def test_generic_subtitle_over_80_is_refused():
    template = Template("generic", elements=(Element("Title", subtitle="s" * 90),))
    assert "element 0 subtitle has 90 characters; the limit is 80" in refused(OutgoingMessage(template=template))


def test_postback_and_quick_reply_payloads_over_1000_are_refused():
    long = "p" * 1001
    template = Template("button", text="Pick", buttons=(Button("postback", "Yes", payload=long),))
    assert "button template button 0 payload has 1001 characters" in refused(OutgoingMessage(template=template))
    reason = refused(OutgoingMessage(text="Pick", quick_replies=(QuickReply("Yes", long),)))
    assert "message[quick_replies][0][payload] has 1001 characters; the limit is 1000" in reason


def test_metadata_over_1000_is_refused():
    assert "message[metadata] has 1001 characters" in refused(OutgoingMessage(text="hi"), metadata="m" * 1001)


def test_quick_reply_titles_are_cut_to_20_characters():
    # Given a quick reply title longer than Meta's 20 characters / When planned / Then it is cut, not refused
    body = plan(OutgoingMessage(text="Pick", quick_replies=(QuickReply("a" * 30, "A"),)))[0]
    assert body["message"]["quick_replies"][0]["title"] == "a" * 20


def test_valid_messages_pass():
    # Given messages at every limit / When planned / Then no problem is found
    button = Button("postback", "b" * 20, payload="p" * 1000)
    replies = [
        OutgoingMessage(text="x" * 1999, quick_replies=tuple(QuickReply(f"q{i}", "p") for i in range(13))),
        OutgoingMessage(template=Template("button", text="t" * 640, buttons=(button,) * 3)),
        OutgoingMessage(template=Template("generic", elements=(Element("e" * 80, subtitle="s" * 80),) * 10)),
        OutgoingMessage(attachment_url="https://example.com/a.png", attachment_type="image"),
    ]
    assert len(plan(*replies, metadata="m" * 1000)) == 4


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"text": "a", "attachment": {}}, "exactly one of text and attachment"),
        ({}, "exactly one of text and attachment"),
        ({"text": ""}, "message[text] must be a non-empty string"),
        ({"text": "x" * 2000}, "message[text] has 2000 characters; the limit is 1999"),
        ({"text": "a", "quick_replies": []}, "must hold 1 to 13 quick replies (0)"),
        (
            {"text": "a", "quick_replies": [{"content_type": "text", "title": "t", "payload": "p"}] * 14},
            "must hold 1 to 13 quick replies (14)",
        ),
        ({"text": "a", "quick_replies": [{"content_type": "location"}]}, "[content_type] must be one of"),
        (
            {"text": "a", "quick_replies": [{"content_type": "text", "title": "t" * 21, "payload": "p"}]},
            "[title] has 21 characters; the limit is 20",
        ),
        ({"text": "a", "quick_replies": [{"content_type": "text", "payload": "p"}]}, "[title] must be a non-empty"),
        ({"attachment": {"type": "image", "payload": {"url": "ftp://x"}}}, "[url] must be an http(s) URL"),
        ({"attachment": {"type": "sticker", "payload": {}}}, "[type] must be one of"),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": "t",
                        "buttons": [{"type": "postback", "title": "b", "payload": "p"}] * 4,
                    },
                }
            },
            "button template needs 1 to 3 buttons (4)",
        ),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": [{"title": "t", "subtitle": "s"}] * 11},
                }
            },
            "a generic template needs 1 to 10 elements (11)",
        ),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": [{"title": "t" * 81, "subtitle": "s"}]},
                }
            },
            "element 0 title has 81 characters; the limit is 80",
        ),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "generic",
                        "elements": [
                            {"title": "t", "buttons": [{"type": "web_url", "title": "t" * 21, "url": "https://x"}]}
                        ],
                    },
                }
            },
            "element 0 button 0 title has 21 characters; the limit is 20",
        ),
        (
            {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": "t",
                        "buttons": [{"type": "phone_number", "title": "Call", "payload": "555"}],
                    },
                }
            },
            "a phone number starting with +",
        ),
        ({"attachment": {"type": "template", "payload": {"template_type": "media"}}}, "template_type must be one of"),
    ],
)
def test_message_problems_names_each_broken_limit(message, problem):
    # Given a message body Meta would refuse / When checked / Then the problem is named
    assert any(problem in p for p in limits.message_problems(message)), limits.message_problems(message)


def test_image_quick_reply_may_have_no_title():
    # Given a text quick reply with only an image ("title ... Required if ... image_url" is absent)
    message = {"text": "a", "quick_replies": [{"content_type": "text", "image_url": "https://x/i.png", "payload": ""}]}
    assert limits.message_problems(message) == []
