"""What 1 million inbound messages, each answered once, cost in AWS: measured on the local stack, priced.

    python -m bench.cost [--messages 100] [--provider-latency-ms 250] [--cold-share 0.01] [--json]

One end-to-end run of the local stack (`local.stack`: the template's HTTP API, the real handlers, DynamoDB
Local, moto, the stream poller with the template's event source mapping, the sandbox providers sending
echo/delivery/read and status callbacks) in this process, with meters on what AWS bills:

- every botocore call is wrapped (`BaseClient._make_api_call`): DynamoDB calls ask for ReturnConsumedCapacity
  =INDEXES, so DynamoDB Local reports the write/read units of the table and of every GSI per call, whatever
  operations the code makes; Secrets Manager calls are counted. Calls are attributed to the function whose
  handler (or reply worker thread) made them; the stack's own set-up and the stream poller are not counted.
- each handler is timed (warm: every invocation after the first), and each handler's stdout (Powertools
  logs and EMF metrics, the bytes Lambda sends to CloudWatch Logs) is counted per function.
- each webhook invocation is one HTTP API request (the API only routes to the webhook).

Messages are sent one at a time (the next once the previous one is answered), so every reply invocation
holds one record, as at 1M messages a month (0.4 a second, under the 1 s batching window). The model and
the prices (us-east-1, list, arm64) are in docs/cost.md; what is assumed rather than measured is named.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.common import LAYER, ROOT, subprocess_seconds

MESSAGES_PRICED = 1_000_000
MONTH_S = 30 * 86_400

# us-east-1 list prices, read 2026-12-01 (sources in docs/cost.md).
PRICES = {
    "apigw_http_per_million": 1.00,  # HTTP API, first 300M requests/month, per 512 KB
    "lambda_request_per_million": 0.20,
    "lambda_gb_s_arm64": 0.0000133334,  # first 7.5B GB-s/month
    "dynamodb_wru_per_million": 0.625,  # on-demand, standard table class
    "dynamodb_rru_per_million": 0.125,
    "dynamodb_storage_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,
    "secrets_per_10k_calls": 0.05,
    "logs_ingest_per_gb": 0.50,  # standard class (Lambda logs: first 10 TB tier)
    "logs_store_gb_month": 0.03,
    "xray_trace_recorded_per_million": 5.00,
}
# CloudWatch Logs bills each event's UTF-8 bytes plus 26 bytes of metadata.
LOG_EVENT_OVERHEAD = 26
# X-Ray's default sampling rule: the first request each second, then 5% of the rest.
XRAY_RESERVOIR_PER_S, XRAY_RATE = 1.0, 0.05
SECRET_MAX_AGE_S = 300


# -- meters ------------------------------------------------------------------------------------------


@dataclass
class FunctionMeter:
    invocations: int = 0
    durations_ms: list[float] = field(default_factory=list)
    log_bytes: int = 0
    log_events: int = 0
    wru_table: float = 0.0
    wru_gsi: float = 0.0
    rru_table: float = 0.0
    rru_gsi: float = 0.0
    dynamodb_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    secrets_calls: int = 0


class Meter:
    """Per-function counts of what AWS bills, filled by the wrappers below."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionMeter] = defaultdict(FunctionMeter)
        self.local = threading.local()
        self.lock = threading.Lock()
        self.reply_function = "ReplyFunction"

    def current(self) -> str | None:
        fid = getattr(self.local, "function", None)
        if fid is None and threading.current_thread().name.startswith("reply"):
            return self.reply_function  # the reply function's worker threads (ConversationOrderedProcessor)
        return fid

    def reset(self) -> None:
        with self.lock:
            self.functions.clear()

    def dynamodb(self, operation: str, consumed: Any, failed_write: bool) -> None:
        fid = self.current()
        if fid is None:
            return
        with self.lock:
            meter = self.functions[fid]
            meter.dynamodb_calls[operation] += 1
            for capacity in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
                write = operation in WRITE_OPERATIONS
                table = (capacity.get("Table") or {}).get("CapacityUnits", capacity.get("CapacityUnits", 0.0))
                gsi = sum(i.get("CapacityUnits", 0.0) for i in (capacity.get("GlobalSecondaryIndexes") or {}).values())
                if write:
                    meter.wru_table, meter.wru_gsi = meter.wru_table + table, meter.wru_gsi + gsi
                else:
                    meter.rru_table, meter.rru_gsi = meter.rru_table + table, meter.rru_gsi + gsi
            if failed_write:
                meter.wru_table += 1.0  # a failed condition still costs the write (at least 1 WRU)

    def secret(self) -> None:
        fid = self.current()
        if fid is not None:
            with self.lock:
                self.functions[fid].secrets_calls += 1

    def log(self, text: str) -> None:
        fid = self.current()
        if fid is None or not text:
            return
        with self.lock:
            meter = self.functions[fid]
            meter.log_bytes += len(text.encode())
            meter.log_events += text.count("\n")


WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


class CountingStdout:
    """sys.stdout for the run: counts what each function prints (its CloudWatch Logs), shows nothing."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def write(self, text: str) -> int:
        self.meter.log(text)
        return len(text)

    def flush(self) -> None:
        return

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def metered(meter: Meter) -> Iterator[None]:
    """Wrap every botocore call and every handler loaded by the local stack; count stdout per function."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    from local import workers

    original_call, original_load, original_stdout = BaseClient._make_api_call, workers.load_handler, sys.stdout

    def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        if service == "secretsmanager" and operation == "GetSecretValue":
            meter.secret()
        if service != "dynamodb":
            return original_call(client, operation, params)
        members = client.meta.service_model.operation_model(operation).input_shape.members
        if "ReturnConsumedCapacity" in members:
            params = {**params, "ReturnConsumedCapacity": "INDEXES"}
        try:
            response = original_call(client, operation, params)
        except ClientError as exc:
            failed = exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
            meter.dynamodb(operation, exc.response.get("ConsumedCapacity"), failed and operation in WRITE_OPERATIONS)
            raise
        meter.dynamodb(operation, response.get("ConsumedCapacity"), False)
        return response

    def load(spec: Any, instance: str = "") -> Any:
        handler, fid = original_load(spec, instance), spec.function_id

        def timed(event: dict[str, Any], context: Any) -> Any:
            meter.local.function = fid
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                meter.local.function = None
                with meter.lock:
                    meter.functions[fid].invocations += 1
                    meter.functions[fid].durations_ms.append(elapsed_ms)

        return timed

    BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    workers.load_handler = load  # the stack runs the functions in-process (Options.in_process)
    sys.stdout = CountingStdout(meter)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout = original_stdout
        BaseClient._make_api_call = original_call  # type: ignore[method-assign]
        workers.load_handler = original_load


# -- the run -----------------------------------------------------------------------------------------


def _http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        data = response.read()
    return json.loads(data) if data else None


def _inbound(provider: str, user: str, text: str) -> tuple[str, bytes, dict[str, str]]:
    from local.services import sandbox_secrets
    from tools import payloads

    secrets = sandbox_secrets()
    page = next(iter(secrets["meta"]["page_tokens"]))
    if provider == "meta":
        now = payloads.now_ms()
        message = payloads.meta_message(user, page, now, message={"mid": f"m_cost_{uuid.uuid4().hex}", "text": text})
        return "/meta/webhook", *payloads.signed_meta(
            payloads.meta_page(message, page_id=page, time_ms=now), secrets["meta"]
        )
    inbound = payloads.vonage_inbound(str(uuid.uuid4()), page_id=page, user=user, text=text)
    return "/vonage/inbound", *payloads.signed_vonage(inbound, secrets["vonage"])


def _wait(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the local stack did not settle")
        time.sleep(0.02)


def _quiet(meter: Meter, stack: Any, quiet_s: float = 0.6) -> None:
    """Wait until no handler has run for `quiet_s` and the poller is idle (callbacks all delivered)."""

    def count() -> int:
        with meter.lock:
            return sum(m.invocations for m in meter.functions.values())

    while True:
        before = count()
        time.sleep(quiet_s)
        if count() == before and stack.poller is not None and stack.poller.idle:
            return


def run(messages: int, warmup: int) -> dict[str, Any]:
    """The end-to-end run: `warmup` then `messages` inbound messages, half Meta, half Vonage."""
    from local.services import free_port
    from local.stack import LocalStack, Options, Ports

    meter = Meter()
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as state, metered(meter):
        os.environ.update({"LOCAL_STATE_DIR": state, "LOCAL_METRICS": "1"})
        options = Options(poll_interval_s=0.05, retry_delay_s=0.1, callback_delay_s=0.02, in_process=True)
        stack = LocalStack(
            Ports(free_port(), free_port(), free_port(), free_port()), log=lambda _: None, options=options
        )
        stack.start()
        try:
            if stack.sandbox_server is not None:
                stack.sandbox_server.sandbox.read_delay_s = 0.05
            before = {"items": 0, "table_bytes": 0, "gsi_bytes": 0}
            for index in range(warmup + messages):
                if index == warmup:
                    _quiet(meter, stack)
                    meter.reset()
                    before = _scan(stack)
                provider = "meta" if index % 2 == 0 else "vonage"
                user = f"{8_000_000_000_000_000 + index}"
                path, body, headers = _inbound(provider, user, "hi, what are your opening hours?")
                _http("POST", stack.api_url + path, body, headers)
                _wait(
                    lambda u=user: any(
                        200 <= r["status"] < 300
                        for r in _http("GET", f"{stack.sandbox_url}/_sandbox/requests?recipient={u}")
                    )
                )
            _quiet(meter, stack)
            storage = _scan(stack)
            storage = {key: storage[key] - before[key] for key in storage}
        finally:
            stack.stop()
    functions = {fid: asdict(m) for fid, m in meter.functions.items()}
    return {"messages": messages, "warmup": warmup, "functions": functions, "storage": storage}


def _scan(stack: Any) -> dict[str, Any]:
    """Items in the table and their DynamoDB-billed size (name + value bytes, 100 bytes overhead each)."""
    from local.services import client
    from local.template import table_definition

    # The key attributes of each GSI the template declares (an item is in a GSI when it has all of them).
    gsi_keys = [
        {key["AttributeName"] for key in index["KeySchema"]}
        for index in table_definition("messenger-events").get("GlobalSecondaryIndexes", [])
    ]
    dynamodb = client("dynamodb", stack.dynamodb_url)
    items, table_bytes, gsi_bytes = 0, 0, 0
    for page in dynamodb.get_paginator("scan").paginate(TableName="messenger-events"):
        for item in page["Items"]:
            size = _item_size(item) + 100
            items += 1
            table_bytes += size
            gsi_bytes += size * sum(keys <= item.keys() for keys in gsi_keys)  # projected ALL
    return {"items": items, "table_bytes": table_bytes, "gsi_bytes": gsi_bytes}


def _item_size(value: Any) -> int:
    if (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}
    ):
        ((kind, inner),) = value.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return math.ceil(len(inner.lstrip("-").replace(".", "")) / 2) + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode()) + 1 + _item_size(v) for k, v in inner.items())
        if kind == "L":
            return 3 + sum(1 + _item_size(v) for v in inner)
        return sum(len(str(v).encode()) for v in inner)
    return sum(len(k.encode()) + _item_size(v) for k, v in value.items())


# -- the model ---------------------------------------------------------------------------------------


@dataclass
class Line:
    item: str
    quantity: float
    unit: str
    cost: float
    basis: str


def platform_log_bytes(duration_ms: float, memory_mb: int) -> int:
    """Lambda's START, END and REPORT lines for one invocation (X-Ray active), as CloudWatch bills them."""
    request_id = str(uuid.uuid4())
    lines = [
        f"START RequestId: {request_id} Version: $LATEST",
        f"END RequestId: {request_id}",
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: "
        f"{math.ceil(duration_ms)} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: 98 MB\t\n"
        f"XRAY TraceId: 1-6750a1b2-0123456789abcdef01234567\tSegmentId: 0123456789abcdef\tSampled: true\t",
    ]
    return sum(len(line.encode()) + LOG_EVENT_OVERHEAD for line in lines)


def access_log_bytes() -> int:
    """One HTTP API access log line: the template's Format with typical values."""
    from local.template import resources

    fmt = resources()["HttpApi"]["Properties"]["AccessLogSettings"]["Format"]
    values = {
        "requestId": "Vx1aBhGkoAMEV0w=",
        "identity.sourceIp": "173.252.127.117",
        "requestTime": "01/Dec/2026:10:00:00 +0000",
        "httpMethod": "POST",
        "routeKey": "POST /meta/webhook",
        "status": "200",
        "protocol": "HTTP/1.1",
        "responseLength": "28",
        "integrationLatency": "21",
        "integrationErrorMessage": "-",
    }
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        fmt = fmt.replace(f"$context.{name}", value)
    return len(fmt.encode()) + LOG_EVENT_OVERHEAD


def xray_sampled_share(traces_per_month: float) -> float:
    """Share of requests the default rule records when they arrive evenly over the month."""
    rate = traces_per_month / MONTH_S
    if rate <= 0:
        return 0.0
    return min(1.0, (min(rate, XRAY_RESERVOIR_PER_S) + XRAY_RATE * max(0.0, rate - XRAY_RESERVOIR_PER_S)) / rate)


def init_seconds(runs: int = 3) -> dict[str, float]:
    """Median import time of each handler in a fresh interpreter, as Lambda imports it (its INIT, billed)."""
    code = """
import sys, time
sys.path[:0] = [{layer!r}]
start = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(time.perf_counter() - start)
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "messenger-webhook",
        "POWERTOOLS_METRICS_NAMESPACE": "MessengerWebhook",
    }
    result = {}
    for fid, name in (("WebhookFunction", "webhook"), ("ReplyFunction", "reply")):
        path = str(ROOT / "functions" / name / "app.py")
        fenv = {**env, "LAMBDA_TASK_ROOT": str(ROOT / "functions" / name), "AWS_LAMBDA_FUNCTION_NAME": fid}
        result[fid] = statistics.median(subprocess_seconds(code.format(layer=str(LAYER), path=path), fenv, runs))
    return result


def model(
    measured: dict[str, Any],
    init_s: dict[str, float],
    provider_latency_ms: float,
    cold_share: float,
    retention_days: int = 90,
) -> list[Line]:
    from local.template import function_spec

    n = measured["messages"]
    scale = MESSAGES_PRICED / n
    fns = measured["functions"]
    webhook = fns.get("WebhookFunction", {})
    requests = webhook.get("invocations", 0) * scale
    lines = [
        Line(
            "API Gateway HTTP API requests",
            requests,
            "requests",
            requests / 1e6 * PRICES["apigw_http_per_million"],
            f"{webhook.get('invocations', 0) / n:.2f} requests per message: the inbound and its callbacks (measured)",
        )
    ]
    invocations = sum(f["invocations"] for f in fns.values()) * scale
    lines.append(
        Line(
            "Lambda requests",
            invocations,
            "invocations",
            invocations / 1e6 * PRICES["lambda_request_per_million"],
            ", ".join(f"{fid} {f['invocations'] / n:.2f}/msg" for fid, f in sorted(fns.items())),
        )
    )
    gb_s_total, basis = 0.0, []
    for fid, f in sorted(fns.items()):
        memory_gb = function_spec(fid).memory_mb / 1024
        warm = statistics.median(f["durations_ms"][1:] or f["durations_ms"])
        extra = provider_latency_ms if fid == "ReplyFunction" else 0.0
        billed_ms = math.ceil(warm + extra) + cold_share * init_s.get(fid, 0.0) * 1000
        gb_s = f["invocations"] * scale * memory_gb * billed_ms / 1000
        gb_s_total += gb_s
        basis.append(
            f"{fid} {warm:.1f} ms warm"
            + (f" + {extra:.0f} ms provider" if extra else "")
            + f", {init_s.get(fid, 0) * 1000:.0f} ms init x {cold_share:.0%}, {memory_gb * 1024:.0f} MB"
        )
    lines.append(
        Line("Lambda duration (arm64)", gb_s_total, "GB-s", gb_s_total * PRICES["lambda_gb_s_arm64"], "; ".join(basis))
    )
    wru = sum(f["wru_table"] + f["wru_gsi"] for f in fns.values()) * scale
    wru_gsi = sum(f["wru_gsi"] for f in fns.values()) * scale
    rru = sum(f["rru_table"] + f["rru_gsi"] for f in fns.values()) * scale
    lines.append(
        Line(
            "DynamoDB write request units",
            wru,
            "WRU",
            wru / 1e6 * PRICES["dynamodb_wru_per_million"],
            f"{wru / MESSAGES_PRICED:.1f} WRU/msg, of which GSI {wru_gsi / MESSAGES_PRICED:.1f} "
            "(ConsumedCapacity, measured)",
        )
    )
    lines.append(
        Line(
            "DynamoDB read request units",
            rru,
            "RRU",
            rru / 1e6 * PRICES["dynamodb_rru_per_million"],
            f"{rru / MESSAGES_PRICED:.1f} RRU/msg (measured)",
        )
    )
    storage = measured["storage"]
    ttl_deletes = storage["items"] * scale
    lines.append(
        Line(
            "DynamoDB TTL deletes",
            ttl_deletes,
            "items",
            0.0,
            f"{storage['items'] / n:.1f} items/msg expire after {retention_days} days: TTL deletes are free",
        )
    )
    stored_gb = (storage["table_bytes"] + storage["gsi_bytes"]) * scale / 1e9
    months = retention_days / 30
    lines.append(
        Line(
            "DynamoDB storage + PITR",
            stored_gb * months,
            "GB-month",
            stored_gb * months * (PRICES["dynamodb_storage_gb_month"] + PRICES["dynamodb_pitr_gb_month"]),
            f"{(storage['table_bytes'] + storage['gsi_bytes']) / n / 1024:.1f} KB/msg (table + GSI) "
            f"kept {retention_days} days",
        )
    )
    # With the cache, calls follow time, not messages: each warm container re-reads each secret every 5 minutes.
    secrets_calls = len(fns) * 2 * MONTH_S / SECRET_MAX_AGE_S
    measured_calls = sum(f["secrets_calls"] for f in fns.values())
    lines.append(
        Line(
            "Secrets Manager API calls",
            secrets_calls,
            "calls",
            secrets_calls / 1e4 * PRICES["secrets_per_10k_calls"],
            f"{measured_calls} calls in the run of {n} messages (cache hits after the first); "
            f"a month: {len(fns)} warm containers x 2 secrets every {SECRET_MAX_AGE_S} s",
        )
    )
    log_bytes = 0.0
    for fid, f in fns.items():
        warm = statistics.median(f["durations_ms"][1:] or f["durations_ms"])
        own = f["log_bytes"] + f["log_events"] * LOG_EVENT_OVERHEAD
        log_bytes += (own + f["invocations"] * platform_log_bytes(warm, function_spec(fid).memory_mb)) * scale
    log_bytes += requests * access_log_bytes()
    per_msg = log_bytes / MESSAGES_PRICED
    lines.append(
        Line(
            "CloudWatch Logs ingestion",
            log_bytes / 1e9,
            "GB",
            log_bytes / 1e9 * PRICES["logs_ingest_per_gb"],
            f"{per_msg:.0f} B/msg: function output (measured) + Lambda START/END/REPORT + access log lines",
        )
    )
    traces = sum(f["invocations"] * scale * xray_sampled_share(f["invocations"] * scale) for f in fns.values())
    lines.append(
        Line(
            "X-Ray traces recorded",
            traces,
            "traces",
            traces / 1e6 * PRICES["xray_trace_recorded_per_million"],
            f"{invocations / MESSAGES_PRICED:.1f} traced invocations/msg; the default rule (per function, "
            f"even arrivals) records {traces / invocations:.0%}",
        )
    )
    return lines


def what_if(measured: dict[str, Any], lines: list[Line]) -> list[str]:
    """Changes that cut the biggest lines, from the same run's measurements (no new assumption)."""
    fns, n = measured["functions"], measured["messages"]
    cost = {line.item: line for line in lines}
    out = []
    xray = cost["X-Ray traces recorded"]
    reply = fns.get("ReplyFunction", {"invocations": 0})
    reply_traces = reply["invocations"] * MESSAGES_PRICED / n
    reply_traces *= xray_sampled_share(reply_traces)
    saved = xray.cost - reply_traces / 1e6 * PRICES["xray_trace_recorded_per_million"]
    out.append(
        f"- webhook without active tracing (Tracing: PassThrough on WebhookFunction; its "
        f"{fns.get('WebhookFunction', {}).get('invocations', 0) / n:.0f} invocations/msg: the inbound and its "
        "callbacks): "
        f"X-Ray ${xray.cost:,.2f} -> ${xray.cost - saved:,.2f} (-{saved / xray.cost:.0%})"
    )
    wru_line, storage_line = cost["DynamoDB write request units"], cost["DynamoDB storage + PITR"]
    gsi_wru = sum(f["wru_gsi"] for f in fns.values())
    all_wru = sum(f["wru_gsi"] + f["wru_table"] for f in fns.values()) or 1
    st = measured["storage"]
    gsi_share = st["gsi_bytes"] / ((st["table_bytes"] + st["gsi_bytes"]) or 1)
    cut = wru_line.cost * gsi_wru / all_wru + storage_line.cost * gsi_share
    out.append(
        f"- no GSI (the conversation as the partition key, issue 9): DynamoDB writes "
        f"-{gsi_wru / all_wru:.0%} and storage -{gsi_share:.0%} (ConsumedCapacity and item sizes of this run): "
        f"-${cut:,.2f}"
    )
    return out


def render(lines: list[Line]) -> str:
    total = sum(line.cost for line in lines)
    header = ["per 1M inbound messages answered once", "quantity", "unit", "USD", "share", "basis"]
    rows = [
        [
            line.item,
            f"{line.quantity:,.0f}" if line.quantity >= 100 else f"{line.quantity:,.2f}",
            line.unit,
            f"{line.cost:,.2f}",
            f"{line.cost / total:.0%}" if total else "-",
            line.basis,
        ]
        for line in lines
    ]
    rows.append(["total", "", "", f"{total:,.2f}", "100%", ""])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    out = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), *(row[i].rjust(widths[i]) for i in range(1, len(widths))), row[-1]]
        out.append("  ".join(cells))
    out.insert(1, "-" * len(out[0]))
    top = max(lines, key=lambda line: line.cost)
    out.append(f"\ndominant line: {top.item} (${top.cost:,.2f}, {top.cost / total:.0%} of ${total:,.2f})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cost", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument(
        "--provider-latency-ms",
        type=float,
        default=250.0,
        help="assumed Send API / Messages API latency (the sandbox answers in ~1 ms)",
    )
    parser.add_argument("--cold-share", type=float, default=0.01, help="assumed share of invocations that are cold")
    parser.add_argument("--json", action="store_true", help="also print the measurements as JSON")
    args = parser.parse_args(argv)
    print(f"cost: {args.messages} messages end to end on the local stack (after {args.warmup} warm-up) ...", flush=True)
    measured = run(args.messages, args.warmup)
    init_s = init_seconds()
    lines = model(measured, init_s, args.provider_latency_ms, args.cold_share)
    print(render(lines))
    print("\nchanges that cut the biggest lines (from this run's measurements):")
    print("\n".join(what_if(measured, lines)))
    per_fn = {
        fid: {k: (round(v, 2) if isinstance(v, float) else v) for k, v in f.items() if k != "durations_ms"}
        | {"warm_median_ms": round(statistics.median(f["durations_ms"][1:] or f["durations_ms"]), 2)}
        for fid, f in measured["functions"].items()
    }
    result = {
        "functions": per_fn,
        "storage": measured["storage"],
        "init_s": init_s,
        "lines": [asdict(line) for line in lines],
    }
    if args.json:
        print(json.dumps(result, indent=2, default=dict))
    return result


if __name__ == "__main__":
    main()
