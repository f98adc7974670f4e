"""Handover: thread-control events and human echoes pause the conversation; pass_thread_control resumes."""

from __future__ import annotations

import pytest

from messenger.events import conversation_id
from messenger.handover import BOT_METADATA
from tests.helpers import PAGE_ID, dumps, load_handler, meta_body, meta_post

pytestmark = pytest.mark.integration
USER = "3998527223577371"


@pytest.fixture
def handler(stack_env):
    return load_handler("webhook").lambda_handler


def echo(mid: str, ts: int, metadata: str | None = None) -> dict:
    message = {"mid": mid, "is_echo": True, "app_id": 263902037430900, "text": "a person here"}
    if metadata:
        message["metadata"] = metadata
    return {"sender": {"id": PAGE_ID}, "recipient": {"id": USER}, "timestamp": ts, "message": message}


def thread_control(key: str, ts: int) -> dict:
    return {
        "sender": {"id": USER},
        "recipient": {"id": PAGE_ID},
        "timestamp": ts,
        key: {"previous_owner_app_id": 1, "new_owner_app_id": 2, "metadata": "agent"},
    }


def pause(stack_env) -> int:
    return stack_env.store().paused_until(conversation_id("meta", PAGE_ID, USER))


def test_human_echo_pauses_and_pass_thread_control_resumes(handler, lambda_context, stack_env, monkeypatch):
    monkeypatch.setenv("HANDOVER_PAUSE_SECONDS", "600")
    # Given a Page admin's reply by hand (an echo without our metadata)
    assert handler(meta_post(dumps(meta_body(echo("m_e1", 1_000_000)))), lambda_context)["statusCode"] == 200
    # Then the bot is paused for the configured time
    assert pause(stack_env) == 1_000_000 + 600_000
    # When control is passed back to us, the bot resumes
    handler(meta_post(dumps(meta_body(thread_control("pass_thread_control", 2_000_000)))), lambda_context)
    assert pause(stack_env) == 0
    # And an older take_thread_control delivered late does not override the newer resume
    handler(meta_post(dumps(meta_body(thread_control("take_thread_control", 1_500_000)))), lambda_context)
    assert pause(stack_env) == 0


def test_our_own_echo_does_not_pause(handler, lambda_context, stack_env):
    handler(meta_post(dumps(meta_body(echo("m_e2", 1_000_000, metadata=BOT_METADATA)))), lambda_context)
    assert pause(stack_env) == 0


def test_take_thread_control_pauses(handler, lambda_context, stack_env):
    handler(meta_post(dumps(meta_body(thread_control("take_thread_control", 3_000_000)))), lambda_context)
    assert pause(stack_env) == 3_000_000 + 3_600_000
