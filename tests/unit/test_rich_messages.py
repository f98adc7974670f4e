"""Rich outbound messages (issue 6): templates, reply_to, notification type, validation before any request."""

from __future__ import annotations

import pytest

from messenger.handover import BOT_METADATA
from messenger.messages import Button, Element, InboundMessage, OutgoingMessage, QuickReply, Template
from messenger.policy import SendPolicy
from messenger.providers.meta.send import plan_messages as meta_plan
from messenger.providers.vonage.send import plan_messages as vonage_plan

INBOUND = InboundMessage(
    provider="vonage",
    event_id="aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
    kind="message",
    page_id="107083064136738",
    user_id="3998527223577371",
    conversation_id="vonage#107083064136738#3998527223577371",
    timestamp_ms=1,
    text="hi",
)


def test_generic_template_body_matches_the_send_api():
    # Given a generic template with one card and two buttons
    card = Element(
        title="Blue shirt",
        subtitle="EUR 25",
        image_url="https://shop.example/shirt.png",
        buttons=(
            Button("web_url", "View", url="https://shop.example/shirt"),
            Button("postback", "Buy", payload="BUY_SHIRT"),
        ),
    )
    # When it is planned for Meta
    [body] = meta_plan("psid", [OutgoingMessage(template=Template("generic", elements=(card,)))], SendPolicy())
    # Then it is one attachment of type template, in Meta's shape, marked as ours
    assert body["message"] == {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "generic",
                "elements": [
                    {
                        "title": "Blue shirt",
                        "subtitle": "EUR 25",
                        "image_url": "https://shop.example/shirt.png",
                        "buttons": [
                            {"type": "web_url", "title": "View", "url": "https://shop.example/shirt"},
                            {"type": "postback", "title": "Buy", "payload": "BUY_SHIRT"},
                        ],
                    }
                ],
            },
        },
        "metadata": BOT_METADATA,
    }
    assert body["messaging_type"] == "RESPONSE"


def test_button_template_with_quick_replies_reply_to_and_notification_type():
    template = Template("button", text="Pick one", buttons=(Button("postback", "Yes", payload="Y"),))
    reply = OutgoingMessage(
        template=template,
        quick_replies=(QuickReply("Later", "LATER"),),
        reply_to_mid="m_original",
        notification_type="SILENT_PUSH",
    )
    [body] = meta_plan("psid", [reply], SendPolicy())
    assert body["message"]["attachment"]["payload"] == {
        "template_type": "button",
        "text": "Pick one",
        "buttons": [{"type": "postback", "title": "Yes", "payload": "Y"}],
    }
    assert body["message"]["quick_replies"] == [{"content_type": "text", "title": "Later", "payload": "LATER"}]
    assert body["reply_to"] == {"mid": "m_original"}
    assert body["notification_type"] == "SILENT_PUSH"


def test_reply_to_goes_on_the_first_part_of_a_split_text_only():
    bodies = meta_plan("psid", [OutgoingMessage(text="word " * 900, reply_to_mid="m_1")], SendPolicy())
    assert len(bodies) == 3
    assert [b.get("reply_to") for b in bodies] == [{"mid": "m_1"}, None, None]


def test_typing_on_is_its_own_request_before_the_reply():
    bodies = meta_plan("psid", [OutgoingMessage(sender_action="typing_on"), OutgoingMessage(text="done")], SendPolicy())
    assert bodies[0] == {"recipient": {"id": "psid"}, "sender_action": "typing_on"}
    assert bodies[1]["message"]["text"] == "done"


def test_vonage_renders_a_template_as_text_and_drops_meta_only_fields():
    template = Template(
        "button",
        text="Pick one",
        buttons=(Button("postback", "Yes", payload="Y"), Button("postback", "No", payload="N")),
    )
    [body] = vonage_plan(
        INBOUND, [OutgoingMessage(template=template, reply_to_mid="m", notification_type="NO_PUSH")], SendPolicy()
    )
    assert body["message_type"] == "text"
    assert body["text"] == "Pick one\n- Yes\n- No"
    assert "reply_to" not in body and "notification_type" not in body


def test_vonage_attachment_by_url():
    [body] = vonage_plan(
        INBOUND, [OutgoingMessage(attachment_url="https://x/a.pdf", attachment_type="file")], SendPolicy()
    )
    assert body["message_type"] == "file" and body["file"] == {"url": "https://x/a.pdf"}
    assert body["to"] == INBOUND.user_id and body["from"] == INBOUND.page_id


@pytest.mark.parametrize(
    "build",
    [
        lambda: Template("generic"),
        lambda: Template("generic", elements=tuple(Element(title=f"e{i}") for i in range(11))),
        lambda: Template("button", text="x"),
        lambda: Template("button", text="x", buttons=tuple(Button("postback", f"b{i}", payload="p") for i in range(4))),
        lambda: Template("list", text="x"),
        lambda: Button("web_url", "View", url="http://not-https"),
        lambda: Button("postback", "x" * 21, payload="p"),
        lambda: Button("postback", "No payload"),
        lambda: OutgoingMessage(
            text="hi", template=Template("button", text="x", buttons=(Button("postback", "b", payload="p"),))
        ),
        lambda: OutgoingMessage(text="hi", notification_type="LOUD"),
        lambda: OutgoingMessage(attachment_url="ftp://x", attachment_type="file"),
        lambda: OutgoingMessage(sender_action="typing_on", text="hi"),
    ],
)
def test_invalid_messages_are_refused_before_any_request(build):
    with pytest.raises(ValueError):
        build()
