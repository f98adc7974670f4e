"""bench/cost.py: the meters' arithmetic and the price model (the end-to-end run is in tests/integration)."""

from __future__ import annotations

import json
import math

import pytest

from bench import cost


def measurement(**overrides):
    webhook = {
        "invocations": 40,
        "durations_ms": [900.0] + [10.0] * 39,
        "cpu_ms": [500.0] + [4.0] * 39,
        "log_bytes": 40_000,
        "log_events": 80,
        "wru_table": 60.0,
        "wru_gsi": 0.0,
        "rru_table": 5.0,
        "rru_gsi": 5.0,
        "dynamodb_calls": {},
        "units_by_call": {"PutItem EVT#": [40, 60.0, 0.0], "GetItem REPLY#": [10, 0.0, 10.0]},
        "secrets_calls": 2,
        "metrics": ["MessengerWebhook/EventsStored/service"],
    }
    reply = {
        "invocations": 10,
        "durations_ms": [1500.0] + [20.0] * 9,
        "cpu_ms": [600.0] + [10.0] * 9,
        "log_bytes": 10_000,
        "log_events": 20,
        "wru_table": 30.0,
        "wru_gsi": 0.0,
        "rru_table": 0.0,
        "rru_gsi": 0.0,
        "dynamodb_calls": {},
        "units_by_call": {"UpdateItem STATE": [20, 25.0, 0.0], "PutItem REPLY# refused": [5, 5.0, 0.0]},
        "secrets_calls": 2,
        "metrics": ["MessengerWebhook/RepliesSent/service", "MessengerWebhook/EventsStored/service"],
    }
    base = {
        "messages": 10,
        "warmup": 0,
        "functions": {"WebhookFunction": webhook, "ReplyFunction": reply},
        "storage": {"items": 60, "table_bytes": 30_000, "gsi_bytes": 0},
    }
    base.update(overrides)
    return base


SETTINGS = cost.Settings(
    memory_mb={"WebhookFunction": 1024, "ReplyFunction": 256},
    tracing_active=False,
    retention_days=14,
    pitr=False,
    log_retention_days=30,
    alarm_metrics=11,
    dashboards=1,
    secrets=2,
    table_capacity="OnDemand",
    scaling_policies=2,
    scaling_target=0.70,
    scaling_min_units=5,
)
INIT = {
    "WebhookFunction": {"cpu": 0.3, "wall": 0.4, "rss_mb": 90.0},
    "ReplyFunction": {"cpu": 0.3, "wall": 0.4, "rss_mb": 90.0},
}


def volume(messages_per_month=30_000_000, settings=SETTINGS, **kwargs):
    pm = cost.per_message(measurement(), kwargs.pop("extra_wru", 0.0))
    options = {"provider_latency_ms": 250.0, "cold_share": 0.0, **kwargs}
    return cost.model(pm, settings, INIT, messages_per_month, **options)


def lines(v):
    return {line.name: line for line in v.lines}


def test_counts_per_message_come_from_the_run():
    pm = cost.per_message(measurement())
    assert pm.invocations == {"WebhookFunction": 4.0, "ReplyFunction": 1.0}
    assert (pm.wru, pm.rru) == (9.0, 1.0)
    # warm medians leave the first (cold) invocation out; the wait is the wall time the CPU does not explain
    assert (pm.cpu_ms["WebhookFunction"], pm.wait_ms["WebhookFunction"]) == (4.0, 6.0)
    assert pm.metrics == ["MessengerWebhook/EventsStored/service", "MessengerWebhook/RepliesSent/service"]
    assert cost.per_message(measurement(), extra_wru=2).wru == 11.0


def test_requests_writes_and_reads_are_priced_per_million_messages_at_any_volume():
    for messages in cost.VOLUMES:
        got = lines(volume(messages))
        assert got["API Gateway HTTP API requests"].usd_per_million == pytest.approx(4.00)
        assert got["Lambda requests"].usd_per_million == pytest.approx(1.00)
        assert got["DynamoDB write request units"].usd_per_million == pytest.approx(9 * 0.625)
        assert got["DynamoDB read request units"].usd_per_million == pytest.approx(0.125)


def test_duration_stretches_cpu_below_a_full_vcpu_and_adds_the_provider_wait_to_the_reply():
    # Given 4 ms of CPU and 6 ms of waiting per webhook call, 10 + 10 ms per reply, 250 ms for the Send API
    got = lines(volume())["Lambda duration (arm64)"].usd_per_million
    webhook_ms = math.ceil(4 * 1769 / 1024 + 6)
    reply_ms = math.ceil(10 * 1769 / 256 + 10 + 250)
    gb_s = 4 * 1.0 * webhook_ms / 1000 + 1 * 0.25 * reply_ms / 1000
    assert got == pytest.approx(gb_s * 1e6 * cost.PRICES["lambda_gb_s_arm64"])
    # And a cold start adds its INIT (billed) to the cold share of invocations
    cold = lines(volume(cold_share=0.01))["Lambda duration (arm64)"].usd_per_million
    assert cold > got
    # And at a full vCPU the CPU is not stretched any more
    assert cost.billed_ms(4, 6, 1769) == cost.billed_ms(4, 6, 3008) == 10


def test_storage_holds_the_retention_period_and_pitr_adds_its_price():
    # 3 KB a message kept 14 days at 30M a month: 30M x 3,000 B x 14/30 = 42 GB
    plain = lines(volume())["DynamoDB storage"]
    assert plain.usd_per_million == pytest.approx(42 * 0.25 / 30)
    with_pitr = cost.Settings(**{**SETTINGS.__dict__, "pitr": True})
    assert lines(volume(settings=with_pitr))["DynamoDB storage + PITR"].usd_per_million == pytest.approx(42 * 0.45 / 30)


def test_fixed_costs_are_a_line_of_their_own_that_spreads_over_the_months_messages():
    small, large = volume(1_000_000), volume(30_000_000)
    fixed = {line.name: line.usd_per_million for line in small.fixed}
    assert fixed["CloudWatch dashboard"] == 3.00 and fixed["CloudWatch alarms"] == pytest.approx(1.10)
    assert fixed["CloudWatch custom metrics (EMF)"] == pytest.approx(2 * 0.30)
    assert fixed["Secrets Manager secrets"] == pytest.approx(0.80)
    assert lines(small)["fixed monthly costs, per message"].usd_per_million == pytest.approx(small.fixed_usd_per_month)
    assert lines(large)["fixed monthly costs, per message"].usd_per_million == pytest.approx(
        large.fixed_usd_per_month / 30
    )
    assert small.usd_per_million > large.usd_per_million


def test_the_free_tier_is_shown_apart_and_never_lowers_the_total():
    v = volume(1_000_000)
    assert {line.name for line in v.free_tier} == {"Lambda", "DynamoDB storage", "CloudWatch", "X-Ray"}
    assert all(line.usd_per_million >= 0 for line in v.free_tier)
    assert v.usd_per_million == pytest.approx(sum(line.usd_per_million for line in v.lines))


@pytest.mark.parametrize(
    ("rate", "sampled"),
    [
        (0.0, 0.0),
        (0.001, 0.001),  # rare requests: nearly each is the first of its second
        (1.0, (1 - math.exp(-1)) + 0.05 * (1 - (1 - math.exp(-1)))),
        (100.0, 1 + 0.05 * 99),
    ],
)
def test_xray_samples_the_first_request_of_each_second_then_5_percent(rate, sampled):
    assert cost.xray_sampled_per_s(rate) == pytest.approx(sampled, rel=1e-3)


def test_xray_costs_less_per_message_at_volume_and_nothing_with_tracing_passthrough():
    traced = cost.Settings(**{**SETTINGS.__dict__, "tracing_active": True})
    small = lines(volume(1_000_000, settings=traced))["X-Ray traces recorded"].usd_per_million
    large = lines(volume(30_000_000, settings=traced))["X-Ray traces recorded"].usd_per_million
    assert 5 * 5.0 * 0.3 < small < 5 * 5.0  # 5 invocations a message, most of them sampled at 0.4 messages/s
    assert large < small / 4
    assert lines(volume())["X-Ray traces recorded"].usd_per_million == 0


def test_the_diurnal_profile_keeps_the_months_messages():
    rates = cost.hourly_rates(30_000_000)
    assert sum(rate * 3600 for rate in rates) * cost.MONTH_DAYS == pytest.approx(30_000_000)
    assert max(rates) > 1.5 * (sum(rates) / len(rates)) > 5 * min(rates)


def test_logs_count_each_event_with_cloudwatch_overhead_plus_platform_and_access_lines():
    got = lines(volume())["CloudWatch Logs ingestion"]
    own = (50_000 + 100 * cost.LOG_EVENT_OVERHEAD) / 10
    assert got.usd_per_million * 1e3 / cost.PRICES["logs_ingest_per_gb"] > own + 4 * cost.access_log_bytes()
    assert 200 < cost.platform_log_bytes(12.3, 512, traced=False) < cost.platform_log_bytes(12.3, 512, traced=True)
    assert 100 < cost.access_log_bytes() < 300


def test_emf_metric_names_read_every_blob_of_a_write():
    blob = {
        "_aws": {
            "CloudWatchMetrics": [
                {"Namespace": "N", "Dimensions": [["service"]], "Metrics": [{"Name": "A"}, {"Name": "B"}]}
            ]
        },
        "service": "s",
    }
    assert cost.emf_metric_names(json.dumps(blob) + "\n" + '{"level":"INFO"}') == {"N/A/service", "N/B/service"}


def test_item_size_follows_dynamodbs_rules():
    # names count, strings count their UTF-8 bytes, numbers about half their digits + 1
    assert cost._item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert cost._item_size({"n": {"N": "12345"}}) == 1 + 4
    assert cost._item_size({"é": {"S": "é"}}) == 4
    assert cost._item_size({"m": {"M": {"a": {"BOOL": True}}}}) == 1 + 3 + 1 + 1 + 1


def test_json_has_exactly_the_documented_keys_per_volume_and_line():
    out = cost.as_json([volume(1_000_000), volume(30_000_000)])
    assert [set(v) for v in out] == [{"messages_per_month", "usd_per_million", "fixed_usd_per_month", "lines"}] * 2
    assert all(set(line) == {"name", "usd_per_million"} for v in out for line in v["lines"])
    assert out[1]["usd_per_million"] == pytest.approx(sum(line["usd_per_million"] for line in out[1]["lines"]), 1e-3)


def test_the_template_settings_are_what_the_model_prices():
    settings = cost.template_settings()
    assert settings.memory_mb == {"WebhookFunction": 1024, "ReplyFunction": 256}
    assert (settings.tracing_active, settings.pitr, settings.retention_days) == (False, False, 14)
    # 8 single-metric alarms and 2 metric-math alarms reading 2 metrics each
    assert settings.alarm_metrics == 8 + 2 * 2 and settings.dashboards == 1 and settings.secrets == 2
    # TableCapacity: on demand by default; auto scaled, 2 target-tracking policies at 70%, never under 5 units
    assert settings.table_capacity == "OnDemand"
    assert (settings.scaling_policies, settings.scaling_target, settings.scaling_min_units) == (2, 0.70, 5)


def test_markdown_has_both_volumes_and_the_doc_section_is_rewritten(tmp_path, monkeypatch):
    v = [volume(1_000_000), volume(30_000_000)]
    m = measurement()
    text = cost.markdown(v, cost.memory_choices(cost.per_message(m), INIT, 250), INIT, cost.units_by_call(m), "stamp")
    assert "| per 1M messages | 1M a month | 30M a month |" in text and "**total**" in text
    # where the units go, per message (10 messages), the costliest write first within each function
    assert "| ReplyFunction | UpdateItem STATE | 2.00 | 2.50 | 0.00 |" in text
    assert text.index("UpdateItem STATE") < text.index("PutItem REPLY# refused")
    assert "| WebhookFunction | PutItem EVT# | 4.00 | 6.00 | 0.00 |" in text
    doc = tmp_path / "cost.md"
    doc.write_text(f"# t\n\n{cost.DOC_BEGIN}\nold\n{cost.DOC_END}\n\nafter\n")
    monkeypatch.setattr(cost, "DOC", doc)
    cost.write_doc("new")
    assert doc.read_text() == f"# t\n\n{cost.DOC_BEGIN}\nnew\n{cost.DOC_END}\n\nafter\n"


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"Item": {"pk": {"S": "meta#p#u"}, "sk": {"S": "EVT#000001700000000#m_1"}}}, "EVT#"),
        ({"Key": {"pk": {"S": "meta#p#u"}, "sk": {"S": "STATE"}}}, "STATE"),
        ({"Key": {"pk": {"S": "meta#p#u"}, "sk": {"S": "REPLY#m_1"}}}, "REPLY#"),
        (
            {"ExpressionAttributeValues": {":pk": {"S": "meta#p#u"}, ":from": {"S": "EVT#0"}, ":to": {"S": "EVT#9"}}},
            "EVT#",
        ),
        ({"ExpressionAttributeValues": {":pk": {"S": "meta#p#u"}}}, "?"),
    ],
)
def test_a_call_is_attributed_to_the_kind_of_item_it_addresses(params, kind):
    assert cost.item_kind(params) == kind


def test_a_refused_conditional_write_is_billed_and_listed_apart():
    meter = cost.Meter()
    meter.local.function = "ReplyFunction"
    key = {"Item": {"pk": {"S": "c"}, "sk": {"S": "REPLY#m_1"}}}
    meter.dynamodb("PutItem", key, {"TableName": "t", "CapacityUnits": 1.0}, False)
    meter.dynamodb("PutItem", key, None, True)
    calls = meter.functions["ReplyFunction"].units_by_call
    assert calls["PutItem REPLY#"] == [1, 1.0, 0.0] and calls["PutItem REPLY# refused"] == [1, 1.0, 0.0]
    assert meter.functions["ReplyFunction"].wru_table == 2.0


def test_auto_scaled_capacity_is_priced_by_the_hour_at_70_percent_with_the_last_hours_lag():
    # Given 9 WRU and 1 RRU a message at 30M a month (11.57 messages a second on average)
    v = volume(30_000_000, table_capacity="AutoScaled")
    got = lines(v)
    assert v.table_capacity == "AutoScaled" and "DynamoDB write request units" not in got
    rates = cost.hourly_rates(30_000_000)
    # Then each hour provisions the higher of its own and the last hour's need at 70%, at least 5 units
    hourly = [max(5, r * 9 / 0.7, rates[h - 1] * 9 / 0.7) for h, r in enumerate(rates)]
    assert cost.provisioned_units(9, 30_000_000, SETTINGS) == pytest.approx(hourly)
    writes = sum(hourly) * 30 * cost.PRICES["dynamodb_wcu_hour"] / 30
    assert got["DynamoDB write capacity (auto scaled)"].usd_per_million == pytest.approx(writes)
    # And it is cheaper than on demand for this steady a day, but not free of the hours it waits for
    on_demand = lines(volume(30_000_000))["DynamoDB write request units"].usd_per_million
    assert 0.3 * on_demand < writes < 0.6 * on_demand
    # And a quiet month sits on the 5-unit floor: at 100,000 messages auto scaling costs more than on demand
    small = lines(volume(100_000, table_capacity="AutoScaled"))["DynamoDB write capacity (auto scaled)"]
    assert small.usd_per_million > lines(volume(100_000))["DynamoDB write request units"].usd_per_million
    # And its 8 alarms are a fixed cost; the provisioned free tier is shown apart
    assert {line.name: line.usd_per_million for line in v.fixed}["DynamoDB auto scaling alarms"] == pytest.approx(0.8)
    assert "DynamoDB provisioned capacity" in {line.name for line in v.free_tier}


def test_the_doc_table_has_a_column_for_the_auto_scaled_stack_and_blanks_where_a_line_does_not_apply():
    v = [volume(1_000_000), volume(30_000_000), volume(30_000_000, table_capacity="AutoScaled")]
    m = measurement()
    text = cost.markdown(v, cost.memory_choices(cost.per_message(m), INIT, 250), INIT, cost.units_by_call(m), "s")
    assert "| per 1M messages | 1M a month | 30M a month | 30M a month, AutoScaled | basis |" in text
    row = next(line for line in text.splitlines() if line.startswith("| DynamoDB write request units |"))
    assert row.split(" | ")[3] == ""  # on demand only


def test_the_auto_scaled_capacity_rows_sit_where_the_request_unit_rows_do():
    v = [volume(1_000_000), volume(30_000_000), volume(30_000_000, table_capacity="AutoScaled")]
    m = measurement()
    text = cost.markdown(v, cost.memory_choices(cost.per_message(m), INIT, 250), INIT, cost.units_by_call(m), "s")
    rows = [line.split(" | ")[0].lstrip("| ") for line in text.splitlines() if line.startswith("| ")]
    order = [r for r in rows if r.startswith(("DynamoDB", "Lambda duration", "fixed monthly"))][:6]
    assert order == [
        "Lambda duration (arm64)",
        "DynamoDB write request units",
        "DynamoDB read request units",
        "DynamoDB write capacity (auto scaled)",
        "DynamoDB read capacity (auto scaled)",
        "DynamoDB storage",
    ]
