"""`python -m local` reads its settings from the environment (local/__main__.py)."""

import pytest

from local import services
from local.__main__ import options_from_env
from local.services import LocalStackError
from local.stack.settings import Options


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
            "LOCAL_STREAM_SPLIT": "2",
            "LOCAL_STREAM_ORDER": "newest-first",
        },
    )
    assert (
        options.reset,
        options.concurrency,
        options.reply_concurrency,
        options.callback_time_scale,
        options.dynamodb_url,
        options.stream_split,
        options.stream_order,
    ) == (True, 8, 2, 600, "http://127.0.0.1:1", 2, "newest-first")


@pytest.mark.parametrize(
    "name, value",
    [
        ("LOCAL_CONCURRENCY", "many"),
        ("LOCAL_POLL_INTERVAL", "-1"),
        ("LOCAL_STREAM_SPLIT", "two"),
        ("LOCAL_STREAM_ORDER", "backwards"),
    ],
)
def test_bad_settings_are_clear_errors(name: str, value: str) -> None:
    with pytest.raises(LocalStackError, match=name):
        options_from_env(False, {name: value})


def test_dynamodb_local_on_disk_skips_fsync_where_libeatmydata_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given libeatmydata is (or is not) found
    monkeypatch.setattr(services.ctypes.util, "find_library", lambda name: "libeatmydata.so.1")
    # Then a table on disk runs with it preloaded (after any preload already set); in memory, nothing changes
    env = services.fsync_free_environment(True, {"LD_PRELOAD": "libother.so", "PATH": "/bin"})
    assert env is not None and env["LD_PRELOAD"] == "libother.so libeatmydata.so.1" and env["PATH"] == "/bin"
    assert services.fsync_free_environment(False, {}) is None
    # And LOCAL_DYNAMODB_FSYNC=1 keeps fsync
    assert services.fsync_free_environment(True, {"LOCAL_DYNAMODB_FSYNC": "1"}) is None
    monkeypatch.setattr(services.ctypes.util, "find_library", lambda name: None)
    assert services.fsync_free_environment(True, {}) is None
