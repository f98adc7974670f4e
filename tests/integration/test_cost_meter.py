"""bench.cost end to end on the local stack: the meters see every callback, invocation, unit and log byte."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.integration


def run_bench(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` from the repository root, which must succeed."""
    run = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run


def test_the_cost_run_meters_callbacks_invocations_capacity_logs_and_prices_both_volumes():
    # When two messages (one Meta, one Vonage) go through the local stack under the meters
    result = json.loads(run_bench("bench.cost", "--messages", "2", "--warmup", "1", "--json").stdout)
    webhook, reply = result["functions"]["WebhookFunction"], result["functions"]["ReplyFunction"]
    # Then each message cost 4 HTTP API requests (inbound + 3 callbacks) and one reply invocation
    assert (webhook["invocations"], reply["invocations"]) == (8, 2)
    # And DynamoDB units, stdout bytes, CPU and items were counted for both functions; no unit is an index's
    assert webhook["wru_table"] >= 8 and reply["wru_table"] >= 2
    assert webhook["wru_gsi"] == reply["wru_gsi"] == 0
    assert webhook["log_bytes"] > 1000 and reply["log_bytes"] > 300
    assert result["per_message"]["cpu_ms"]["ReplyFunction"] > 0 < result["per_message"]["cpu_ms"]["WebhookFunction"]
    assert result["storage"]["items"] >= 10
    # And the EMF metrics the handlers print are the custom metrics priced every month
    assert "MessengerWebhook/EventsStored/service" in webhook["metrics"]
    assert "MessengerWebhook/RepliesSent/service" in reply["metrics"]
    # And both volumes are priced, with the documented keys
    volumes = result["volumes"]
    assert [v["messages_per_month"] for v in volumes] == [1_000_000, 30_000_000]
    assert volumes[0]["usd_per_million"] > volumes[1]["usd_per_million"] > 0
    assert {line["name"] for line in volumes[1]["lines"]} >= {
        "API Gateway HTTP API requests",
        "Lambda requests",
        "Lambda duration (arm64)",
        "DynamoDB write request units",
        "DynamoDB read request units",
        "CloudWatch Logs ingestion",
        "X-Ray traces recorded",
        "fixed monthly costs, per message",
    }
    assert "margin_wru_per_message" in result["goal"]


def test_the_conversation_run_meters_each_step_of_each_message():
    # When three messages of one conversation are answered, each followed by Meta's echo, delivery and read
    result = json.loads(run_bench("bench.conversation", "--messages", "3", "--json").stdout)
    # Then every step was metered on its own: storing the inbound message and answering it write to the table,
    # the read receipt resolves its watermark with a read, and the loop is the sum of the steps
    steps = ("inbound", "reply", "echo", "delivered", "read")
    assert result["inbound"]["writes"] >= 1 and result["inbound"]["wru"] >= 1
    assert result["reply"]["writes"] >= 1 and result["read"]["reads"] + result["read"]["writes"] >= 1
    assert result["loop"]["writes"] == pytest.approx(sum(result[step]["writes"] for step in steps))
    assert result["loop"]["rru"] == pytest.approx(sum(result[step]["rru"] for step in steps))
