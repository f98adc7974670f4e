"""`python -m local` reads its settings from the environment (local/__main__.py)."""

import pytest

from local.__main__ import options_from_env
from local.services import LocalStackError
from local.stack import Options


def test_defaults() -> None:
    assert options_from_env(False, {}) == Options()
    assert Options().concurrency == 4 and Options().callback_time_scale == 60


def test_settings_from_the_environment() -> None:
    options = options_from_env(
        True,
        {
            "LOCAL_CONCURRENCY": "8",
            "LOCAL_REPLY_CONCURRENCY": "2",
            "LOCAL_CALLBACK_TIME_SCALE": "600",
            "LOCAL_DYNAMODB_URL": "http://127.0.0.1:1",
        },
    )
    assert (
        options.reset,
        options.concurrency,
        options.reply_concurrency,
        options.callback_time_scale,
        options.dynamodb_url,
    ) == (True, 8, 2, 600, "http://127.0.0.1:1")


@pytest.mark.parametrize("name, value", [("LOCAL_CONCURRENCY", "many"), ("LOCAL_POLL_INTERVAL", "-1")])
def test_bad_settings_are_clear_errors(name: str, value: str) -> None:
    with pytest.raises(LocalStackError, match=name):
        options_from_env(False, {name: value})
