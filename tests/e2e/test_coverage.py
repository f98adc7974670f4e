"""Issue 6 end to end through the local stack: handover pauses and resumes the bot; data deletion."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlencode

import pytest

from messenger.providers.meta.signed_request import make_signed_request
from tests.e2e.conftest import LocalStack, http, meta_body, meta_message, new_user, wait_until
from tests.helpers import META, PAGE_ID

pytestmark = pytest.mark.e2e


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_human_takes_over_then_hands_back(stack: LocalStack) -> None:
    user = new_user()
    # Given a Page admin who answers the user by hand in the Inbox (an echo that is not ours)
    human_echo = {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": user},
        "timestamp": now_ms(),
        "message": {
            "is_echo": True,
            "app_id": 263902037430900,
            "mid": f"m_{uuid.uuid4().hex}",
            "text": "Hi, Sam from the shop here",
        },
    }
    assert stack.meta_post(meta_body(human_echo))[0] == 200
    # When the user answers the person
    assert stack.meta_post(meta_body(meta_message(user, "thanks Sam")))[0] == 200
    stack.settled()
    # Then the bot keeps out of the conversation
    assert stack.sends(user) == []
    claims = [i for i in stack.items(user) if i["sk"].startswith("REPLY#")]
    assert [c["state"] for c in claims] == ["skipped"]
    # When control is passed back to our app, the bot answers again
    handback = {
        "sender": {"id": user},
        "recipient": {"id": PAGE_ID},
        "timestamp": now_ms(),
        "pass_thread_control": {"new_owner_app_id": 1, "metadata": "resolved"},
    }
    assert stack.meta_post(meta_body(handback))[0] == 200
    assert stack.meta_post(meta_body(meta_message(user, "one more question")))[0] == 200
    sends = wait_until(lambda: stack.sends(user, ok_only=True))
    assert len(sends) == 1 and sends[0]["body"]["recipient"] == {"id": user}


def test_a_data_deletion_request_removes_the_users_data(stack: LocalStack) -> None:
    user, other = new_user(), new_user()
    # Given two users who talked to the bot
    for psid in (user, other):
        assert stack.meta_post(meta_body(meta_message(psid, "hello")))[0] == 200
    wait_until(lambda: stack.sends(user, ok_only=True) and stack.sends(other, ok_only=True))
    stack.settled()
    assert stack.items(user)
    # When Meta sends a signed deletion request for the first user
    signed = make_signed_request(
        META["app_secret"], {"algorithm": "HMAC-SHA256", "user_id": user, "issued_at": int(time.time())}
    )
    status, answer = http(
        "POST",
        f"{stack.api}/meta/data-deletion",
        urlencode({"signed_request": signed}).encode(),
        {"content-type": "application/x-www-form-urlencoded"},
    )
    # Then the answer has a status URL and a confirmation code, and nothing of that user is left
    assert status == 200
    assert answer["url"].endswith(f"/meta/data-deletion/{answer['confirmation_code']}")
    assert stack.items(user) == []
    assert stack.items(other)
    status, report = http("GET", f"{stack.api}/meta/data-deletion/{answer['confirmation_code']}")
    assert status == 200 and report["status"] == "completed" and report["deleted_items"] >= 2
    # And a forged request is refused
    forged = make_signed_request("not-the-app-secret", {"algorithm": "HMAC-SHA256", "user_id": other})
    status, _ = http(
        "POST",
        f"{stack.api}/meta/data-deletion",
        urlencode({"signed_request": forged}).encode(),
        {"content-type": "application/x-www-form-urlencoded"},
    )
    assert status == 401
    assert stack.items(other)
