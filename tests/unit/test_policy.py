"""The messaging-window policy."""

from __future__ import annotations

import pytest

from messenger.policy import HUMAN_AGENT_WINDOW_MS, STANDARD_WINDOW_MS, PolicyRefusedError, SendPolicy, decide

NOW = 1_800_000_000_000


@pytest.mark.parametrize("age_ms", [0, 1, STANDARD_WINDOW_MS - 1, STANDARD_WINDOW_MS])
def test_inside_24h_is_a_response(age_ms):
    assert decide(NOW - age_ms, NOW, human_agent_enabled=False) == SendPolicy("RESPONSE")


def test_future_timestamp_counts_as_now():
    assert decide(NOW + 5000, NOW, human_agent_enabled=False) == SendPolicy("RESPONSE")


def test_outside_24h_without_human_agent_is_refused():
    with pytest.raises(PolicyRefusedError) as info:
        decide(NOW - STANDARD_WINDOW_MS - 1, NOW, human_agent_enabled=False)
    assert info.value.code == "outside_window"


def test_outside_24h_within_7_days_uses_human_agent_when_enabled():
    policy = decide(NOW - 3 * 86_400_000, NOW, human_agent_enabled=True)
    assert policy == SendPolicy("MESSAGE_TAG", "HUMAN_AGENT")


def test_beyond_7_days_is_refused_even_with_human_agent():
    with pytest.raises(PolicyRefusedError) as info:
        decide(NOW - HUMAN_AGENT_WINDOW_MS - 1, NOW, human_agent_enabled=True)
    assert info.value.code == "outside_human_agent_window"


@pytest.mark.parametrize("tag", ["CONFIRMED_EVENT_UPDATE", "ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE"])
def test_retired_tags_are_refused_before_sending(tag):
    with pytest.raises(PolicyRefusedError, match="retired") as info:
        decide(NOW, NOW, human_agent_enabled=True, tag=tag)
    assert info.value.code == "retired_tag"


def test_unknown_tag_is_refused():
    with pytest.raises(PolicyRefusedError):
        decide(NOW, NOW, human_agent_enabled=True, tag="SHIPPING_UPDATE")


@pytest.mark.parametrize(("tag", "code"), [("ACCOUNT_UPDATE", "retired_tag"), ("SHIPPING_UPDATE", "unknown_tag")])
def test_a_send_policy_with_a_bad_tag_cannot_be_built(tag, code):
    # The one tag check: a SendPolicy is valid by construction, so no sender checks tags again
    with pytest.raises(PolicyRefusedError) as info:
        SendPolicy("MESSAGE_TAG", tag)
    assert info.value.code == code
