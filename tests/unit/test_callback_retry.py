"""The sandbox re-sends callbacks the way Meta and Vonage do (local/sandbox/callbacks.py RetrySchedule)."""

from local.sandbox import META_CALLBACK_RETRY, VONAGE_CALLBACK_RETRY


def test_meta_retries_any_failure_at_once_then_backs_off_within_an_hour() -> None:
    delays = META_CALLBACK_RETRY.delays()
    assert delays[:2] == [0.0, 0.0], "a few retries at once"
    backoff = delays[2:]
    assert backoff == sorted(backoff) and backoff[0] == 30 and max(backoff) == 900
    assert sum(delays) <= 3600, "Messenger gives up (disables the subscription) after an hour"
    assert all(META_CALLBACK_RETRY.retryable(status) for status in (0, 400, 403, 404, 429, 500, 503))
    assert not META_CALLBACK_RETRY.retryable(200)


def test_vonage_retries_only_429_and_5xx_doubling_from_5s_to_15min_for_24h() -> None:
    delays = VONAGE_CALLBACK_RETRY.delays()
    assert delays[:9] == [5, 10, 20, 40, 80, 160, 320, 640, 900]
    assert set(delays[9:]) == {900}
    assert 86400 - 900 < sum(delays) <= 86400
    assert [s for s in (0, 200, 400, 401, 403, 404, 422, 429, 500, 502, 503) if VONAGE_CALLBACK_RETRY.retryable(s)] == [
        0,
        429,
        500,
        502,
        503,
    ]


def test_the_schedule_is_compressed_for_local_use() -> None:
    assert VONAGE_CALLBACK_RETRY.delays(60)[:3] == [5 / 60, 10 / 60, 20 / 60]
    assert sum(META_CALLBACK_RETRY.delays(60)) <= 60
