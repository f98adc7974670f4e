"""bench/cost.py: the meters' arithmetic and the price model (the end-to-end run is in tests/integration)."""

from __future__ import annotations

import pytest

from bench import cost
from local.template import function_spec

# The template's memory sizes (GB) of the two functions; the model bills each at its own.
WEBHOOK_GB = function_spec("WebhookFunction").memory_mb / 1024
REPLY_GB = function_spec("ReplyFunction").memory_mb / 1024


def measurement(**overrides):
    webhook = {
        "invocations": 40,
        "durations_ms": [900.0] + [10.0] * 39,
        "log_bytes": 40_000,
        "log_events": 80,
        "wru_table": 60.0,
        "wru_gsi": 40.0,
        "rru_table": 5.0,
        "rru_gsi": 5.0,
        "dynamodb_calls": {},
        "secrets_calls": 2,
    }
    reply = {
        "invocations": 10,
        "durations_ms": [1500.0] + [20.0] * 9,
        "log_bytes": 10_000,
        "log_events": 20,
        "wru_table": 30.0,
        "wru_gsi": 20.0,
        "rru_table": 0.0,
        "rru_gsi": 0.0,
        "dynamodb_calls": {},
        "secrets_calls": 2,
    }
    base = {
        "messages": 10,
        "warmup": 0,
        "functions": {"WebhookFunction": webhook, "ReplyFunction": reply},
        "storage": {"items": 60, "table_bytes": 60_000, "gsi_bytes": 40_000},
    }
    base.update(overrides)
    return base


def lines_by_item(**kwargs):
    return {
        line.item: line for line in cost.model(measurement(), {"WebhookFunction": 1.0, "ReplyFunction": 1.0}, **kwargs)
    }


def test_requests_and_invocations_scale_the_measured_counts_to_a_million_messages():
    lines = lines_by_item(provider_latency_ms=0, cold_share=0)
    assert lines["API Gateway HTTP API requests"].quantity == 4_000_000
    assert lines["API Gateway HTTP API requests"].cost == pytest.approx(4.00)
    assert lines["Lambda requests"].quantity == 5_000_000 and lines["Lambda requests"].cost == pytest.approx(1.00)


def test_duration_uses_the_warm_median_the_memory_size_and_the_cold_share():
    # 4M x 10 ms + 1M x 20 ms at the template's memory sizes; 1% cold adds 1 s of init to 1% of each
    warm = lines_by_item(provider_latency_ms=0, cold_share=0)["Lambda duration (arm64)"]
    assert warm.quantity == pytest.approx(WEBHOOK_GB * 4e6 * 0.010 + REPLY_GB * 1e6 * 0.020)
    cold = lines_by_item(provider_latency_ms=0, cold_share=0.01)["Lambda duration (arm64)"]
    assert cold.quantity == pytest.approx(warm.quantity + 0.01 * 1.0 * (WEBHOOK_GB * 4e6 + REPLY_GB * 1e6))
    waiting = lines_by_item(provider_latency_ms=250, cold_share=0)["Lambda duration (arm64)"]
    assert waiting.quantity == pytest.approx(warm.quantity + REPLY_GB * 1e6 * 0.250)


def test_dynamodb_units_include_the_gsi_and_ttl_deletes_cost_nothing():
    lines = lines_by_item(provider_latency_ms=0, cold_share=0)
    assert lines["DynamoDB write request units"].quantity == pytest.approx(15e6)  # (100 + 50) / 10 messages
    assert lines["DynamoDB write request units"].cost == pytest.approx(15 * 0.625)
    assert lines["DynamoDB read request units"].quantity == pytest.approx(1e6)
    assert lines["DynamoDB TTL deletes"].quantity == 6e6 and lines["DynamoDB TTL deletes"].cost == 0


def test_logs_count_each_event_with_cloudwatch_overhead_plus_platform_and_access_lines():
    lines = lines_by_item(provider_latency_ms=0, cold_share=0)
    logs = lines["CloudWatch Logs ingestion"]
    own = (50_000 + 100 * cost.LOG_EVENT_OVERHEAD) * 100_000
    assert logs.quantity * 1e9 > own + 4e6 * cost.access_log_bytes()
    assert 300 < cost.platform_log_bytes(12.3, 512) < 600
    assert 250 < cost.access_log_bytes() < 500


@pytest.mark.parametrize(
    ("per_month", "share"),
    [
        (0, 0.0),
        (cost.MONTH_S * 0.5, 1.0),  # under one a second: the reservoir records all
        (cost.MONTH_S * 2.0, (1 + 0.05 * 1) / 2),  # 2 a second: the first, then 5% of the second
        (cost.MONTH_S * 1000.0, (1 + 0.05 * 999) / 1000),
    ],
)
def test_xray_default_rule_share(per_month, share):
    assert cost.xray_sampled_share(per_month) == pytest.approx(share)


def test_item_size_follows_dynamodbs_rules():
    # names count, strings count their UTF-8 bytes, numbers about half their digits + 1
    assert cost._item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert cost._item_size({"n": {"N": "12345"}}) == 1 + 4
    assert cost._item_size({"é": {"S": "é"}}) == 4
    assert cost._item_size({"m": {"M": {"a": {"BOOL": True}}}}) == 1 + 3 + 1 + 1 + 1


def test_render_names_the_dominant_line_and_what_if_uses_the_run():
    measured = measurement()
    lines = cost.model(measured, {"WebhookFunction": 1.0, "ReplyFunction": 1.0}, 250, 0.01)
    text = cost.render(lines)
    top = max(lines, key=lambda line: line.cost)
    assert f"dominant line: {top.item}" in text and "total" in text
    changes = cost.what_if(measured, lines)
    assert any("writes -40%" in change and "storage -40%" in change for change in changes)
    assert any("webhook without active tracing" in change for change in changes)
