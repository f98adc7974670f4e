"""`make connect` against the running local stack (the sandbox as Meta and Vonage), twice; then a person taps
each ice breaker and each menu item of the profile it set, through the chat path, and the default rules answer."""

from __future__ import annotations

import io
import os
import subprocess
from urllib.parse import urlsplit

import pytest

from devkit.messenger_profile import PROFILE_FILE, load_profile, offers
from local.chat import Chat, Endpoints
from messenger.messages import InboundMessage
from messenger.reply.responder import RuleResponder
from tests.e2e.conftest import LocalStack, http, new_user
from tests.helpers import PAGE_ID, ROOT, assert_no_secret_in
from tools.connect.plan import WEBHOOK_FIELDS

pytestmark = pytest.mark.e2e


def make_connect(stack: LocalStack, *variables: str) -> subprocess.CompletedProcess[str]:
    """`make connect LOCAL=1 ...` as a person runs it beside `make dev` (the stack's port and state directory)."""
    assert stack.log_path is not None
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env.update(PORT=str(urlsplit(stack.api).port), LOCAL_STATE_DIR=str(stack.log_path.parent))
    done = subprocess.run(
        ["make", "--no-print-directory", "connect", "LOCAL=1", *variables],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert_no_secret_in(done.stdout + done.stderr)
    return done


def expected_reply(title: str, payload: str) -> str:
    tap = InboundMessage("meta", "m", "postback", PAGE_ID, "u", "c", 0, postback_title=title, postback_payload=payload)
    text = RuleResponder().respond(tap)[0].text
    assert text
    return text


def test_make_connect_twice_then_every_ice_breaker_and_menu_item_is_answered(stack: LocalStack) -> None:
    assert http("DELETE", f"{stack.sandbox}/_sandbox/rate-limits")[0] == 200
    # When make connect runs against the local stack
    first = make_connect(stack, "ARGS=--yes")
    # Then Meta's verify handshake passed on the real GET /meta/webhook and every setting was applied
    assert first.returncode == 0, first.stdout + first.stderr
    assert "applied 4 of 4 change(s)" in first.stdout, first.stdout
    setup = http("GET", f"{stack.sandbox}/_sandbox/setup")[1]
    assert setup["meta"]["subscriptions"]["page"] == {
        "callback_url": f"{stack.api}/meta/webhook",
        "fields": list(WEBHOOK_FIELDS),
    }
    assert setup["meta"]["page_fields"][PAGE_ID] == list(WEBHOOK_FIELDS)
    assert setup["vonage"]["application"]["capabilities"]["messages"]["webhooks"]["status_url"] == {
        "address": f"{stack.api}/vonage/status",
        "http_method": "POST",
    }
    # When it runs a second time, then it changes nothing and says so; the drift check agrees
    second = make_connect(stack, "ARGS=--yes")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to change: every setting already matches" in second.stdout, second.stdout
    check = make_connect(stack, "CHECK=1")
    assert check.returncode == 0 and "no drift" in check.stdout, check.stdout

    # When a person taps each ice breaker and each menu item the Page now shows (Meta sends each as a postback)
    profile = load_profile(PROFILE_FILE)
    assert setup["meta"]["profiles"][PAGE_ID]["ice_breakers"] == profile["ice_breakers"]
    taps = [offer for offer in offers(profile) if offer.source != "get_started"]
    assert len(taps) == 6
    for offer in taps:
        out = io.StringIO()
        chat = Chat(Endpoints(stack.api, stack.sandbox, stack.dynamodb_url, stack.table), out=out, timeout_s=30)
        chat.user = new_user()  # "Talk to us" hands the conversation over: each tap is a person of its own
        replies = chat.send(offer.title, "postback", offer.payload)
        # Then the default rule for its payload answers it, through the whole path (webhook, stream, reply, sandbox)
        assert replies >= 1, f"{offer.source} {offer.payload}: {out.getvalue()}"
        assert f"bot> {expected_reply(offer.title, offer.payload)}" in out.getvalue(), out.getvalue()
