"""Messenger's messaging-window policy, decided before any request leaves.

- Inside 24 h of the user's message: `messaging_type` RESPONSE.
- Outside it, only with the HUMAN_AGENT tag (App Review required, so opt-in via
  HUMAN_AGENT_TAG_ENABLED) and only inside 7 days: `MESSAGE_TAG` + `HUMAN_AGENT`.
- The tags Meta retired on 2026-04-27 (error 100 since) are refused here, with a clear reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from messenger.errors import MessengerError

STANDARD_WINDOW_MS = 24 * 3600 * 1000
HUMAN_AGENT_WINDOW_MS = 7 * 24 * 3600 * 1000
RESPONSE = "RESPONSE"
MESSAGE_TAG = "MESSAGE_TAG"
HUMAN_AGENT = "HUMAN_AGENT"
RETIRED_TAGS = frozenset({"CONFIRMED_EVENT_UPDATE", "ACCOUNT_UPDATE", "POST_PURCHASE_UPDATE"})
SUPPORTED_TAGS = frozenset({HUMAN_AGENT, "CUSTOMER_FEEDBACK"})


class PolicyRefusedError(MessengerError):
    """Sending would break the messaging policy: nothing is sent, the reply is recorded as failed."""

    code = "policy_refused"

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How a reply is sent. Valid by construction: a retired or unknown tag raises PolicyRefusedError here,
    the one place tags are checked, so the senders never check them again."""

    messaging_type: str = RESPONSE
    tag: str | None = None

    def __post_init__(self) -> None:
        check_tag(self.tag)


def check_tag(tag: str | None) -> None:
    if tag is None:
        return
    if tag in RETIRED_TAGS:
        raise PolicyRefusedError(
            f"message tag {tag} was retired by Meta on 2026-04-27 (the Send API answers error 100); "
            "use a RESPONSE inside 24 h or HUMAN_AGENT inside 7 days",
            code="retired_tag",
        )
    if tag not in SUPPORTED_TAGS:
        raise PolicyRefusedError(f"unknown message tag {tag!r}", code="unknown_tag")


def decide(user_message_ms: int, now_ms: int, *, human_agent_enabled: bool, tag: str | None = None) -> SendPolicy:
    """How to answer a message the user sent at `user_message_ms`; PolicyRefusedError if we may not."""
    if tag is not None:
        SendPolicy(MESSAGE_TAG, tag)  # refuses a retired or unknown tag first, whatever the window
    age_ms = max(0, now_ms - user_message_ms)
    if tag is None and age_ms <= STANDARD_WINDOW_MS:
        return SendPolicy(RESPONSE)
    if tag not in (None, HUMAN_AGENT):
        # CUSTOMER_FEEDBACK is for the feedback template only, which this responder does not send.
        raise PolicyRefusedError(f"tag {tag} is not used for replies", code="unsupported_tag")
    if not human_agent_enabled:
        raise PolicyRefusedError(
            f"outside the 24 h messaging window ({age_ms // 3_600_000} h since the user's message) and "
            "HUMAN_AGENT_TAG_ENABLED is off",
            code="outside_window",
        )
    if age_ms > HUMAN_AGENT_WINDOW_MS:
        raise PolicyRefusedError(
            f"outside the 7-day HUMAN_AGENT window ({age_ms // 86_400_000} days since the user's message)",
            code="outside_human_agent_window",
        )
    return SendPolicy(MESSAGE_TAG, HUMAN_AGENT)
