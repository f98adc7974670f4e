"""What a million inbound messages, each answered once, cost in AWS at 1M and at 30M a month: measured, priced.

    python -m bench.cost [--messages 100] [--provider-latency-ms 250] [--extra-wru 0] [--json] [--no-doc]

One end-to-end run of the local stack (`local.stack`: the template's HTTP API, the real handlers, DynamoDB
Local, moto, the stream poller with the template's event source mapping, the sandbox providers sending
echo/delivery/read and status callbacks) in this process, with meters on what AWS bills:

- every botocore call is wrapped (`BaseClient._make_api_call`): DynamoDB calls ask for ReturnConsumedCapacity
  =INDEXES, so DynamoDB Local reports the write/read units of every call, whatever operations the code makes;
  a write refused by its condition is counted as the 1 WRU DynamoDB bills for it. Calls are attributed to the
  function whose handler (or reply worker thread) made them; the stack's own set-up and poller are not.
- each handler is timed (wall and CPU: the handler thread's plus the reply worker threads'), and what it
  prints (Powertools log lines and EMF metric blobs: what Lambda sends to CloudWatch Logs) is counted, and the
  EMF metrics it emits are listed (each one is a custom metric billed by the month).
- each webhook invocation is one HTTP API request (the API routes only to the webhook).

The counts per message are then priced at two volumes with arrivals spread over the day (DIURNAL), the
template's settings (memory, tracing, retention, point-in-time recovery, alarms, dashboard) read from
template.yaml, and the monthly costs that do not follow messages on their own line. The model and every price
with its source are in docs/cost.md; the table there is this module's output (rewritten unless --no-doc).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
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

from bench.common import LAYER, ROOT

VOLUMES = (1_000_000, 30_000_000)
GOAL_VOLUME, GOAL_USD_PER_MILLION = 30_000_000, 12.0
MONTH_DAYS = 30
MONTH_S = MONTH_DAYS * 86_400
DOC = ROOT / "docs" / "cost.md"
DOC_BEGIN, DOC_END = "<!-- bench.cost: begin -->", "<!-- bench.cost: end -->"

# us-east-1 list prices, read 2026-12-07; each with its source in docs/cost.md ("Prices used").
PRICES = {
    "apigw_http_per_million": 1.00,  # HTTP API, first 300M requests a month, each 512 KB counted as one
    "lambda_request_per_million": 0.20,
    "lambda_gb_s_arm64": 0.0000133334,  # first 7.5B GB-s a month; INIT billed too since 2025-08-01
    "dynamodb_wru_per_million": 0.625,  # on-demand, Standard class (after the 2024-11-01 cut)
    "dynamodb_rru_per_million": 0.125,
    "dynamodb_wcu_hour": 0.00065,  # provisioned, Standard class
    "dynamodb_rcu_hour": 0.00013,
    "dynamodb_storage_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,
    "secret_month": 0.40,
    "secrets_per_10k_calls": 0.05,
    "logs_ingest_per_gb": 0.50,  # standard class; Lambda's logs: first 10 TB tier
    "logs_store_gb_month": 0.03,
    "custom_metric_month": 0.30,  # first 10,000 metrics, prorated by the hour a metric is sent
    "alarm_metric_month": 0.10,  # standard resolution; a metric-math alarm counts each metric it reads
    "dashboard_month": 3.00,
    "xray_trace_recorded_per_million": 5.00,
}
# The always-free tier (per account, shared with whatever else it runs): shown apart, never in the totals.
FREE_TIER = {
    "lambda_requests": 1_000_000,
    "lambda_gb_s": 400_000,
    "dynamodb_storage_gb": 25,
    "custom_metrics": 10,
    "alarm_metrics": 10,
    "dashboards": 3,
    "logs_gb": 5,
    "xray_traces": 100_000,
    "dynamodb_wcu": 25,  # provisioned capacity units, all month
    "dynamodb_rcu": 25,
}
# TableCapacity=AutoScaled: target tracking keeps consumed / provisioned near the template's target; it
# scales in only after 15 minutes well below it, so each hour is priced at the higher of its own and the
# last hour's need, never below the template's minimum. Application Auto Scaling makes 4 CloudWatch alarms
# per target-tracking policy.
AUTO_SCALING_ALARMS_PER_POLICY = 4
# CloudWatch Logs bills each event's UTF-8 bytes plus 26 bytes of metadata.
LOG_EVENT_OVERHEAD = 26
# Lambda's X-Ray sampling, which a function cannot change: the first request each second, then 5%.
XRAY_RESERVOIR_PER_S, XRAY_RATE = 1, 0.05
SECRET_MAX_AGE_S = 300
# Lambda gives a function one full vCPU at 1,769 MB and a share proportional to memory below it.
FULL_VCPU_MB = 1769
MEMORY_SIZES = (128, 256, 512, 1024, FULL_VCPU_MB)
# Share of each hour's messages in a day (0-23 h, the Page's time zone), a Page that answers its customers:
# quiet at night, a morning rise, a long day with an evening peak. Peak hour 1.67x the mean, night 0.15x.
DIURNAL = (0.4, 0.25, 0.15, 0.15, 0.15, 0.25, 0.5, 0.8, 1.1, 1.3, 1.4, 1.45, 1.5, 1.45, 1.4, 1.35, 1.35,
           1.4, 1.5, 1.65, 1.7, 1.5, 1.1, 0.7)  # fmt: skip


# -- meters ------------------------------------------------------------------------------------------


@dataclass
class FunctionMeter:
    invocations: int = 0
    durations_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    log_bytes: int = 0
    log_events: int = 0
    wru_table: float = 0.0
    wru_gsi: float = 0.0
    rru_table: float = 0.0
    rru_gsi: float = 0.0
    dynamodb_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # "<operation> <item kind>" -> [calls, WRU, RRU]: where the units go (item kind = the sort key's prefix)
    units_by_call: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0.0, 0.0]))
    secrets_calls: int = 0
    metrics: set[str] = field(default_factory=set)


class Meter:
    """Per-function counts of what AWS bills, filled by the wrappers below."""

    def __init__(self) -> None:
        self.functions: dict[str, FunctionMeter] = defaultdict(FunctionMeter)
        self.local = threading.local()
        self.lock = threading.Lock()
        self.reply_function = "ReplyFunction"
        self.worker_cpu_s = 0.0  # CPU of the reply worker threads during the current invocation

    def current(self) -> str | None:
        fid = getattr(self.local, "function", None)
        if fid is None and threading.current_thread().name.startswith("reply"):
            return self.reply_function  # the reply function's worker threads (ConversationOrderedProcessor)
        return fid

    def reset(self) -> None:
        with self.lock:
            self.functions.clear()

    def dynamodb(self, operation: str, params: dict[str, Any], consumed: Any, failed_write: bool) -> None:
        fid = self.current()
        if fid is None:
            return
        with self.lock:
            meter = self.functions[fid]
            meter.dynamodb_calls[operation] += 1
            by_call = meter.units_by_call[f"{operation} {item_kind(params)}{' refused' if failed_write else ''}"]
            by_call[0] += 1
            write = operation in WRITE_OPERATIONS
            for capacity in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
                table = (capacity.get("Table") or {}).get("CapacityUnits", capacity.get("CapacityUnits", 0.0))
                gsi = sum(i.get("CapacityUnits", 0.0) for i in (capacity.get("GlobalSecondaryIndexes") or {}).values())
                if write:
                    meter.wru_table, meter.wru_gsi = meter.wru_table + table, meter.wru_gsi + gsi
                    by_call[1] += table + gsi
                else:
                    meter.rru_table, meter.rru_gsi = meter.rru_table + table, meter.rru_gsi + gsi
                    by_call[2] += table + gsi
            if failed_write:
                meter.wru_table += 1.0  # a failed condition still costs the write (at least 1 WRU)
                by_call[1] += 1.0

    def secret(self) -> None:
        fid = self.current()
        if fid is not None:
            with self.lock:
                self.functions[fid].secrets_calls += 1

    def log(self, text: str) -> None:
        fid = self.current()
        if fid is None or not text:
            return
        names = emf_metric_names(text)
        with self.lock:
            meter = self.functions[fid]
            meter.log_bytes += len(text.encode())
            meter.log_events += text.count("\n")
            meter.metrics |= names


WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def item_kind(params: dict[str, Any]) -> str:
    """The kind of item a call addresses: its sort key's prefix (`EVT#`, `REPLY#`, `MSG#`, `STATE`, ...)."""
    key = params.get("Item") or params.get("Key")
    if key is not None:
        sort_keys = [str(key.get("sk", {}).get("S", "?"))]
    else:  # a Query: the sort key's bounds are among its expression values
        sort_keys = [str(v.get("S", "")) for v in (params.get("ExpressionAttributeValues") or {}).values()]
    from messenger.storage import codec  # the layer's own names for its items (imported late: see metered())

    prefixes = (codec.EVENT, codec.MESSAGE, codec.REPLY, codec.STATE, codec.PROFILE, codec.DELETION)
    for sort_key in sort_keys:
        for prefix in prefixes:
            if sort_key.startswith(prefix):
                return prefix
    return "?"


def emf_metric_names(text: str) -> set[str]:
    """`namespace/name/dimension names` of every metric in the EMF blobs of `text` (one JSON object a line)."""
    names: set[str] = set()
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            for dimensions in directive.get("Dimensions", [[]]):
                for metric in directive.get("Metrics", []):
                    names.add(f"{directive.get('Namespace')}/{metric['Name']}/{','.join(dimensions)}")
    return names


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
    from local.template import function_environment

    original_call, original_load, original_stdout = BaseClient._make_api_call, workers.load_handler, sys.stdout
    # Before the layer is imported: Powertools' Logger keeps the sys.stdout it finds when it is created, and
    # its Logger and Metrics read the service and namespace from the environment the template gives them.
    sys.stdout = CountingStdout(meter)  # type: ignore[assignment]
    for name, value in function_environment("WebhookFunction", {}).items():
        if name.startswith("POWERTOOLS_"):
            os.environ.setdefault(name, value)
    from messenger.reply.batch import ConversationOrderedProcessor

    original_group = ConversationOrderedProcessor._run_group

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
            consumed = exc.response.get("ConsumedCapacity")
            meter.dynamodb(operation, params, consumed, failed and operation in WRITE_OPERATIONS)
            raise
        meter.dynamodb(operation, params, response.get("ConsumedCapacity"), False)
        return response

    def run_group(self: Any, indexes: list[int], entity: Any) -> Any:
        started = time.thread_time()
        try:
            return original_group(self, indexes, entity)
        finally:
            with meter.lock:
                meter.worker_cpu_s += time.thread_time() - started

    def load(spec: Any, instance: str = "") -> Any:
        handler, fid = original_load(spec, instance), spec.function_id

        def timed(event: dict[str, Any], context: Any) -> Any:
            meter.local.function = fid
            with meter.lock:
                meter.worker_cpu_s = 0.0
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return handler(event, context)
            finally:
                elapsed_ms = (time.perf_counter() - started) * 1000
                cpu_ms = (time.thread_time() - cpu) * 1000
                meter.local.function = None
                with meter.lock:
                    meter.functions[fid].invocations += 1
                    meter.functions[fid].durations_ms.append(elapsed_ms)
                    meter.functions[fid].cpu_ms.append(cpu_ms + meter.worker_cpu_s * 1000)

        return timed

    BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
    ConversationOrderedProcessor._run_group = run_group  # type: ignore[method-assign]
    workers.load_handler = load  # the stack runs the functions in-process (Options.in_process)
    try:
        yield
    finally:
        sys.stdout = original_stdout
        BaseClient._make_api_call = original_call  # type: ignore[method-assign]
        ConversationOrderedProcessor._run_group = original_group  # type: ignore[method-assign]
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
    from devkit import payloads
    from devkit.sandbox_secrets import sandbox_secrets

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
    from local.stack.lifecycle import LocalStack
    from local.stack.settings import Options, Ports

    meter = Meter()
    with tempfile.TemporaryDirectory(prefix="bench-cost-") as state, metered(meter):
        os.environ.update({"LOCAL_STATE_DIR": state, "LOCAL_METRICS": "1"})
        # Callbacks 0.1 s after a send: Meta's echo and Vonage's `submitted` come after the Send API answered.
        options = Options(poll_interval_s=0.05, retry_delay_s=0.1, callback_delay_s=0.1, in_process=True)
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
    functions = {fid: asdict(m) | {"metrics": sorted(m.metrics)} for fid, m in meter.functions.items()}
    return {"messages": messages, "warmup": warmup, "functions": functions, "storage": storage}


def _scan(stack: Any) -> dict[str, Any]:
    """Items in the table and their DynamoDB-billed size (name + value bytes, 100 bytes overhead each)."""
    from devkit.local_aws import client
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


def init_cost(tracing: bool, runs: int = 3) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds, and peak RSS, of importing each handler in a fresh interpreter (its INIT),
    with Powertools' tracer on or off as the template's `Tracing` default sets it."""
    import subprocess

    code = """
import json, resource, sys, time
sys.path[:0] = [{layer!r}]
wall, cpu = time.perf_counter(), time.process_time()
import importlib.util
spec = importlib.util.spec_from_file_location("app", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({{"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "messenger-webhook",
        "POWERTOOLS_METRICS_NAMESPACE": "MessengerWebhook",
        "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true",
    }
    result = {}
    for fid, name in (("WebhookFunction", "webhook"), ("ReplyFunction", "reply")):
        path = str(ROOT / "functions" / name / "app.py")
        fenv = {**env, "LAMBDA_TASK_ROOT": str(ROOT / "functions" / name), "AWS_LAMBDA_FUNCTION_NAME": fid}
        samples = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", code.format(layer=str(LAYER), path=path)],
                    env=fenv,
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            for _ in range(runs)
        ]
        result[fid] = {key: statistics.median(s[key] for s in samples) for key in ("wall", "cpu", "rss_mb")}
    return result


# -- the template's settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What the template deploys by default, as far as the bill is concerned."""

    memory_mb: dict[str, int]
    tracing_active: bool
    retention_days: int
    pitr: bool
    log_retention_days: int
    alarm_metrics: int
    dashboards: int
    secrets: int
    table_capacity: str
    scaling_policies: int  # TableCapacity=AutoScaled: the template's target-tracking policies,
    scaling_target: float  # their target use (a share of provisioned capacity)
    scaling_min_units: int  # and the fewest units their scalable targets keep


def template_settings() -> Settings:
    from local.template import function_spec, load_template, resources

    template = load_template()
    defaults = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    res = resources(template)
    functions = [lid for lid, r in res.items() if r.get("Type") == "AWS::Serverless::Function"]
    alarm_metrics = 0
    for resource in res.values():
        if resource.get("Type") == "AWS::CloudWatch::Alarm":
            queries = resource["Properties"].get("Metrics")
            alarm_metrics += sum("MetricStat" in q for q in queries) if queries else 1
    policies = [r["Properties"] for r in res.values() if r.get("Type") == "AWS::ApplicationAutoScaling::ScalingPolicy"]
    scalable = [r for r in res.values() if r.get("Type") == "AWS::ApplicationAutoScaling::ScalableTarget"]
    return Settings(
        memory_mb={fid: function_spec(fid).memory_mb for fid in functions},
        tracing_active=defaults.get("Tracing", "Active") == "Active",
        retention_days=int(defaults.get("RetentionDays", "90")),
        pitr=defaults.get("PointInTimeRecovery", "true") == "true",
        log_retention_days=int(defaults.get("LogRetentionDays", "30")),
        alarm_metrics=alarm_metrics,
        dashboards=sum(r.get("Type") == "AWS::CloudWatch::Dashboard" for r in res.values()),
        secrets=sum(r.get("Type") == "AWS::SecretsManager::Secret" for r in res.values()),
        table_capacity=defaults.get("TableCapacity", "OnDemand"),
        scaling_policies=len(policies),
        scaling_target=max(p["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] for p in policies) / 100,
        scaling_min_units=min(r["Properties"]["MinCapacity"] for r in scalable),
    )


# -- the model ---------------------------------------------------------------------------------------


@dataclass
class Line:
    name: str
    usd_per_million: float
    basis: str


@dataclass
class Volume:
    messages_per_month: int
    lines: list[Line]
    fixed: list[Line]  # USD a month, not per message
    free_tier: list[Line]  # USD a month the always-free tier would take off
    table_capacity: str = "OnDemand"

    @property
    def fixed_usd_per_month(self) -> float:
        return sum(line.usd_per_million for line in self.fixed)

    @property
    def usd_per_million(self) -> float:
        return sum(line.usd_per_million for line in self.lines)


def provisioned_units(units_per_message: float, messages_per_month: int, settings: Settings) -> list[float]:
    """TableCapacity=AutoScaled: the capacity units provisioned in each hour of a day (see
    AUTO_SCALING_ALARMS_PER_POLICY's comment)."""
    need = [rate * units_per_message / settings.scaling_target for rate in hourly_rates(messages_per_month)]
    return [max(settings.scaling_min_units, need[hour], need[hour - 1]) for hour in range(len(need))]


def table_request_lines(pm: PerMessage, messages_per_month: int, table_capacity: str, settings: Settings) -> list[Line]:
    """The table's writes and reads: per request on demand, or capacity-hours when auto scaled."""
    if table_capacity != "AutoScaled":
        return [
            Line(
                "DynamoDB write request units",
                pm.wru * PRICES["dynamodb_wru_per_million"],
                f"{pm.wru:.2f} WRU a message (ConsumedCapacity)",
            ),
            Line(
                "DynamoDB read request units",
                pm.rru * PRICES["dynamodb_rru_per_million"],
                f"{pm.rru:.2f} RRU a message",
            ),
        ]
    lines = []
    for kind, units, price in (("write", pm.wru, "dynamodb_wcu_hour"), ("read", pm.rru, "dynamodb_rcu_hour")):
        hourly = provisioned_units(units, messages_per_month, settings)
        usd_month = sum(hourly) * MONTH_DAYS * PRICES[price]
        lines.append(
            Line(
                f"DynamoDB {kind} capacity (auto scaled)",
                usd_month / (messages_per_month / 1e6),
                f"{units:.2f} units a message at {settings.scaling_target:.0%} use: {min(hourly):,.0f} to "
                f"{max(hourly):,.0f} units provisioned over the day",
            )
        )
    return lines


def hourly_rates(messages_per_month: int) -> list[float]:
    """Messages a second in each hour of a day (DIURNAL), every day of the month alike."""
    total = sum(DIURNAL)
    per_day = messages_per_month / MONTH_DAYS
    return [per_day * weight / total / 3600 for weight in DIURNAL]


def xray_sampled_per_s(rate: float) -> float:
    """Traces Lambda records a second for requests arriving at `rate` a second (Poisson arrivals): the first
    of each second (the reservoir), then 5% of the others."""
    if rate <= 0:
        return 0.0
    first = 1 - math.exp(-rate)  # P(at least one request in the second)
    return first * XRAY_RESERVOIR_PER_S + XRAY_RATE * (rate - first)


def xray_traces_per_month(invocations_per_message: float, messages_per_month: int) -> float:
    return sum(
        xray_sampled_per_s(rate * invocations_per_message) * 3600 * MONTH_DAYS
        for rate in hourly_rates(messages_per_month)
    )


def platform_log_bytes(duration_ms: float, memory_mb: int, traced: bool) -> int:
    """Lambda's START, END and REPORT lines for one invocation, as CloudWatch bills them."""
    request_id = str(uuid.uuid4())
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: "
        f"{math.ceil(duration_ms)} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: 98 MB\t\n"
    )
    if traced:
        report += "XRAY TraceId: 1-6750a1b2-0123456789abcdef01234567\tSegmentId: 0123456789abcdef\tSampled: true\t"
    lines = [f"START RequestId: {request_id} Version: $LATEST", f"END RequestId: {request_id}", report]
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


@dataclass(frozen=True)
class PerMessage:
    """What one message costs in units, from the run (the model's only measured input)."""

    invocations: dict[str, float]
    cpu_ms: dict[str, float]  # warm median, on one core of this machine
    wait_ms: dict[str, float]  # warm median wall minus CPU: DynamoDB Local, the sandbox
    log_bytes: dict[str, float]  # function output per message, with CloudWatch's per-event overhead
    wru: float
    rru: float
    stored_bytes: float
    items: float
    metrics: list[str]


def per_message(measured: dict[str, Any], extra_wru: float = 0.0) -> PerMessage:
    n, fns = measured["messages"], measured["functions"]

    def warm(values: list[float]) -> float:
        return statistics.median(values[1:] or values) if values else 0.0

    return PerMessage(
        invocations={fid: f["invocations"] / n for fid, f in fns.items()},
        cpu_ms={fid: warm(f.get("cpu_ms", [])) for fid, f in fns.items()},
        wait_ms={fid: max(0.0, warm(f["durations_ms"]) - warm(f.get("cpu_ms", []))) for fid, f in fns.items()},
        log_bytes={fid: (f["log_bytes"] + f["log_events"] * LOG_EVENT_OVERHEAD) / n for fid, f in fns.items()},
        wru=sum(f["wru_table"] + f["wru_gsi"] for f in fns.values()) / n + extra_wru,
        rru=sum(f["rru_table"] + f["rru_gsi"] for f in fns.values()) / n,
        stored_bytes=(measured["storage"]["table_bytes"] + measured["storage"]["gsi_bytes"]) / n,
        items=measured["storage"]["items"] / n,
        metrics=sorted({m for f in fns.values() for m in f.get("metrics", [])}),
    )


def billed_ms(cpu_ms: float, wait_ms: float, memory_mb: int) -> float:
    """A warm invocation's billed milliseconds at `memory_mb`: CPU stretched by the vCPU share, waits as they are."""
    return math.ceil(cpu_ms * max(1.0, FULL_VCPU_MB / memory_mb) + wait_ms)


def function_ms(pm: PerMessage, fid: str, memory_mb: int, provider_latency_ms: float) -> float:
    extra = provider_latency_ms if fid == "ReplyFunction" else 0.0
    return billed_ms(pm.cpu_ms.get(fid, 0.0), pm.wait_ms.get(fid, 0.0) + extra, memory_mb)


def init_ms(init: dict[str, dict[str, float]], fid: str, memory_mb: int) -> float:
    """A cold start's INIT (billed since 2025-08-01) at `memory_mb`: the import's CPU stretched, its waits kept."""
    cost = init.get(fid, {"cpu": 0.0, "wall": 0.0})
    return 1000 * (cost["cpu"] * max(1.0, FULL_VCPU_MB / memory_mb) + max(0.0, cost["wall"] - cost["cpu"]))


def model(
    pm: PerMessage,
    settings: Settings,
    init: dict[str, dict[str, float]],
    messages_per_month: int,
    provider_latency_ms: float = 250.0,
    cold_share: float = 0.01,
    table_capacity: str | None = None,
) -> Volume:
    """The bill of `messages_per_month`, with the template's table capacity unless `table_capacity` says."""
    millions = messages_per_month / 1e6
    capacity = table_capacity or settings.table_capacity
    webhook = pm.invocations.get("WebhookFunction", 0.0)
    invocations = sum(pm.invocations.values())
    lines = [
        Line(
            "API Gateway HTTP API requests",
            webhook * PRICES["apigw_http_per_million"],
            f"{webhook:.2f} requests a message: the inbound and the callbacks it causes",
        ),
        Line(
            "Lambda requests",
            invocations * PRICES["lambda_request_per_million"],
            ", ".join(f"{fid} {n:.2f}" for fid, n in sorted(pm.invocations.items())) + " invocations a message",
        ),
    ]
    gb_s_per_message, basis = 0.0, []
    for fid, n in sorted(pm.invocations.items()):
        memory = settings.memory_mb.get(fid, 1024)
        warm_ms = function_ms(pm, fid, memory, provider_latency_ms)
        cold_ms = init_ms(init, fid, memory)
        gb_s_per_message += n * memory / 1024 * (warm_ms + cold_share * cold_ms) / 1000
        basis.append(f"{fid} {memory} MB: {warm_ms:.0f} ms warm, {cold_ms:.0f} ms INIT x {cold_share:.0%}")
    lines.append(
        Line("Lambda duration (arm64)", gb_s_per_message * 1e6 * PRICES["lambda_gb_s_arm64"], "; ".join(basis))
    )
    lines += table_request_lines(pm, messages_per_month, capacity, settings)
    # Steady state: each message's items stay `retention_days` (TTL deletes are free), so the table holds
    # retention_days of messages; billed by the GB-month, PITR on the same size.
    table_gb = pm.stored_bytes * messages_per_month * settings.retention_days / MONTH_DAYS / 1e9
    storage_price = PRICES["dynamodb_storage_gb_month"] + (PRICES["dynamodb_pitr_gb_month"] if settings.pitr else 0)
    lines.append(
        Line(
            "DynamoDB storage" + (" + PITR" if settings.pitr else ""),
            table_gb * storage_price / millions,
            f"{pm.stored_bytes / 1024:.2f} KB a message ({pm.items:.1f} items) kept {settings.retention_days} days: "
            f"{table_gb:,.1f} GB",
        )
    )
    log_bytes = sum(pm.log_bytes.values()) + webhook * access_log_bytes()
    for fid, n in pm.invocations.items():
        memory = settings.memory_mb.get(fid, 1024)
        log_bytes += n * platform_log_bytes(function_ms(pm, fid, memory, provider_latency_ms), memory, False)
    log_gb_month = log_bytes * messages_per_month / 1e9
    lines.append(
        Line(
            "CloudWatch Logs ingestion",
            log_bytes * PRICES["logs_ingest_per_gb"] / 1e3,
            f"{log_bytes:,.0f} B a message: "
            + ", ".join(f"{fid} output {b:,.0f}" for fid, b in sorted(pm.log_bytes.items()))
            + f", Lambda START/END/REPORT, {webhook:.0f} access log lines",
        )
    )
    lines.append(
        Line(
            "CloudWatch Logs storage",
            log_gb_month * settings.log_retention_days / MONTH_DAYS * PRICES["logs_store_gb_month"] / millions,
            f"kept {settings.log_retention_days} days (counted uncompressed: CloudWatch stores them compressed)",
        )
    )
    traces = 0.0
    if settings.tracing_active:
        traces = sum(xray_traces_per_month(n, messages_per_month) for n in pm.invocations.values())
    lines.append(
        Line(
            "X-Ray traces recorded",
            traces * PRICES["xray_trace_recorded_per_million"] / 1e6 / millions,
            (
                f"Tracing=Active: {traces / (invocations * messages_per_month):.1%} of invocations sampled"
                if settings.tracing_active
                else "Tracing=PassThrough (the default): no trace recorded"
            ),
        )
    )
    fixed = fixed_costs(pm, settings, messages_per_month, provider_latency_ms, capacity)
    lines.append(
        Line(
            "fixed monthly costs, per message",
            sum(line.usd_per_million for line in fixed) / millions,
            f"${sum(line.usd_per_million for line in fixed):,.2f} a month / {millions:g}M messages",
        )
    )
    gb_s_month = gb_s_per_message * messages_per_month
    free = [
        Line(
            "Lambda",
            min(invocations * messages_per_month, FREE_TIER["lambda_requests"])
            * PRICES["lambda_request_per_million"]
            / 1e6
            + min(gb_s_month, FREE_TIER["lambda_gb_s"]) * PRICES["lambda_gb_s_arm64"],
            "1M requests and 400,000 GB-s a month",
        ),
        Line(
            "DynamoDB storage",
            min(table_gb, FREE_TIER["dynamodb_storage_gb"]) * PRICES["dynamodb_storage_gb_month"],
            "25 GB",
        ),
        Line(
            "CloudWatch",
            min(len(pm.metrics), FREE_TIER["custom_metrics"]) * PRICES["custom_metric_month"]
            + min(settings.alarm_metrics, FREE_TIER["alarm_metrics"]) * PRICES["alarm_metric_month"]
            + min(settings.dashboards, FREE_TIER["dashboards"]) * PRICES["dashboard_month"]
            + min(log_gb_month, FREE_TIER["logs_gb"]) * PRICES["logs_ingest_per_gb"],
            "10 custom metrics, 10 alarm metrics, 3 dashboards, 5 GB of logs",
        ),
        Line(
            "X-Ray",
            min(traces, FREE_TIER["xray_traces"]) * PRICES["xray_trace_recorded_per_million"] / 1e6,
            "100,000 traces recorded",
        ),
    ]
    if capacity == "AutoScaled":
        free.append(
            Line(
                "DynamoDB provisioned capacity",
                FREE_TIER["dynamodb_wcu"] * 24 * MONTH_DAYS * PRICES["dynamodb_wcu_hour"]
                + FREE_TIER["dynamodb_rcu"] * 24 * MONTH_DAYS * PRICES["dynamodb_rcu_hour"],
                "25 WCU and 25 RCU",
            )
        )
    return Volume(messages_per_month, lines, fixed, free, capacity)


def peak_concurrency(pm: PerMessage, fid: str, memory_mb: int, messages_per_month: int, latency_ms: float) -> int:
    """Warm containers of a function in the busiest hour: arrivals a second x seconds each (at least one)."""
    peak = max(hourly_rates(messages_per_month)) * pm.invocations.get(fid, 0.0)
    return max(1, math.ceil(peak * function_ms(pm, fid, memory_mb, latency_ms) / 1000))


def fixed_costs(
    pm: PerMessage, settings: Settings, messages_per_month: int, latency_ms: float, table_capacity: str = "OnDemand"
) -> list[Line]:
    """USD a month that do not follow messages (the `usd_per_million` field holds USD a month here)."""
    containers = sum(
        peak_concurrency(pm, fid, settings.memory_mb.get(fid, 1024), messages_per_month, latency_ms)
        for fid in pm.invocations
    )
    # With the 5-minute cache, secret reads follow time: each warm container re-reads each secret it uses.
    secret_calls = containers * settings.secrets * MONTH_S / SECRET_MAX_AGE_S
    return [
        Line("CloudWatch dashboard", settings.dashboards * PRICES["dashboard_month"], f"{settings.dashboards}"),
        Line(
            "CloudWatch alarms",
            settings.alarm_metrics * PRICES["alarm_metric_month"],
            f"{settings.alarm_metrics} alarm metrics (a metric-math alarm counts each metric it reads)",
        ),
        Line(
            "CloudWatch custom metrics (EMF)",
            len(pm.metrics) * PRICES["custom_metric_month"],
            f"{len(pm.metrics)} emitted every hour in the run: " + ", ".join(m.split("/")[1] for m in pm.metrics),
        ),
        Line("Secrets Manager secrets", settings.secrets * PRICES["secret_month"], f"{settings.secrets} secrets"),
        Line(
            "Secrets Manager API calls",
            secret_calls / 1e4 * PRICES["secrets_per_10k_calls"],
            f"{containers} warm containers at the peak x {settings.secrets} secrets every {SECRET_MAX_AGE_S} s",
        ),
    ] + (
        [
            Line(
                "DynamoDB auto scaling alarms",
                settings.scaling_policies * AUTO_SCALING_ALARMS_PER_POLICY * PRICES["alarm_metric_month"],
                f"{AUTO_SCALING_ALARMS_PER_POLICY} alarms for each of the {settings.scaling_policies} target-tracking "
                "policies",
            )
        ]
        if table_capacity == "AutoScaled"
        else []
    )


def memory_choices(
    pm: PerMessage, init: dict[str, dict[str, float]], provider_latency_ms: float
) -> list[dict[str, Any]]:
    """Each function at each memory size: cold start, warm duration and USD per 1M messages (duration only)."""
    rows = []
    for fid, n in sorted(pm.invocations.items()):
        for memory in MEMORY_SIZES:
            warm = function_ms(pm, fid, memory, provider_latency_ms)
            cold = init_ms(init, fid, memory)
            rows.append(
                {
                    "function": fid,
                    "memory_mb": memory,
                    "cold_start_ms": round(cold + warm),
                    "warm_ms": round(warm),
                    "usd_per_million": round(n * memory / 1024 * warm / 1000 * 1e6 * PRICES["lambda_gb_s_arm64"], 2),
                }
            )
    return rows


# -- output ------------------------------------------------------------------------------------------


def render(volumes: list[Volume]) -> str:
    """The plain-text report: each volume's lines, its fixed costs and free tier."""
    out = []
    for volume in volumes:
        out.append(f"\n{_column(volume)}: ${volume.usd_per_million:,.2f} per 1M messages")
        width = max(len(line.name) for line in volume.lines)
        for line in volume.lines:
            out.append(f"  {line.name:<{width}}  {line.usd_per_million:>7.2f}  {line.basis}")
        out.append(f"  fixed, ${volume.fixed_usd_per_month:,.2f} a month:")
        out.extend(f"    {line.name}: ${line.usd_per_million:,.2f} ({line.basis})" for line in volume.fixed)
        free = sum(line.usd_per_million for line in volume.free_tier)
        out.append(f"  always-free tier, not in the total: up to ${free:,.2f} a month off")
    return "\n".join(out)


def units_by_call(measured: dict[str, Any]) -> list[dict[str, Any]]:
    """Per message: each function's table calls by operation and item kind, with the units they consumed."""
    n = measured["messages"]
    rows = [
        {"function": fid, "call": call, "calls": c / n, "wru": w / n, "rru": r / n}
        for fid, f in sorted(measured["functions"].items())
        for call, (c, w, r) in sorted(f["units_by_call"].items())
    ]
    return sorted(rows, key=lambda row: (row["function"], -row["wru"], -row["rru"]))


def markdown(
    volumes: list[Volume],
    memory: list[dict[str, Any]],
    init: dict[str, dict[str, float]],
    calls: list[dict[str, Any]],
    stamp: str,
) -> str:
    """The tables of docs/cost.md between its markers."""
    per_million = _by_volume("", "per 1M messages", volumes, lambda v: v.lines)
    per_million.append("| **total** | " + " | ".join(f"**{v.usd_per_million:,.2f}**" for v in volumes) + " | |")
    fixed = _by_volume(FIXED_TITLE, "fixed", volumes, lambda v: v.fixed, per_month=True)
    fixed.append("| **total** | " + " | ".join(f"**{v.fixed_usd_per_month:,.2f}**" for v in volumes) + " | |")
    free = _by_volume(FREE_TITLE, "free tier", volumes, lambda v: v.free_tier, per_month=True)
    mem = ["", "Memory per function (its share of the duration line; cold start = INIT + the first request):", ""]
    mem += ["| function | MB | cold start ms | warm ms | USD per 1M |", "|---|---:|---:|---:|---:|"]
    mem += [
        f"| {r['function']} | {r['memory_mb']} | {r['cold_start_ms']:,} | {r['warm_ms']:,} "
        f"| {r['usd_per_million']:.2f} |"
        for r in memory
    ]
    mem.append("")
    mem.append(
        "INIT measured here: "
        + "; ".join(
            f"{fid} {c['cpu'] * 1000:.0f} ms CPU, {c['wall'] * 1000:.0f} ms wall, {c['rss_mb']:.0f} MB RSS"
            for fid, c in sorted(init.items())
        )
        + "."
    )
    units = ["", "Table calls per message, by function, call and item kind (the writes and reads lines):", ""]
    units += ["| function | call | calls | WRU | RRU |", "|---|---|---:|---:|---:|"]
    units += [f"| {r['function']} | {r['call']} | {r['calls']:.2f} | {r['wru']:.2f} | {r['rru']:.2f} |" for r in calls]
    return "\n".join([f"_{stamp}_", *per_million, *fixed, *free, *units, *mem])


FIXED_TITLE = "Fixed monthly costs (the line above, spread over the month's messages):"
FREE_TITLE = "Always-free tier (per account, shared with its other workloads), not in the totals:"


def _column(volume: Volume) -> str:
    head = f"{volume.messages_per_month / 1e6:g}M a month"
    return head if volume.table_capacity == "OnDemand" else f"{head}, {volume.table_capacity}"


def _by_volume(title: str, first: str, volumes: list[Volume], lines: Any, per_month: bool = False) -> list[str]:
    """A markdown table of `lines(volume)`, one column per volume (a line a volume lacks is blank), then the
    basis at the last volume that has the line."""
    heads = " | ".join(("USD a month at " if per_month else "") + _column(v) for v in volumes)
    out = ["", title, ""] if title else [""]
    out += [f"| {first} | {heads} | basis |", "|---|" + "---:|" * len(volumes) + "---|"]
    names: list[str] = []
    for v in volumes:  # each volume's own order: a name the volumes before lack goes before its next known one
        own = [line.name for line in lines(v)]
        for index, name in enumerate(own):
            if name not in names:
                after = [n for n in own[index + 1 :] if n in names]
                names.insert(names.index(after[0]) if after else len(names), name)
    for name in names:
        found = [next((line for line in lines(v) if line.name == name), None) for v in volumes]
        cells = " | ".join(f"{line.usd_per_million:,.2f}" if line else "" for line in found)
        basis = [line for line in found if line][-1].basis
        out.append(f"| {name} | {cells} | {basis} |")
    return out


def write_doc(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(DOC_BEGIN) + r".*?" + re.escape(DOC_END), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC} has no {DOC_BEGIN} ... {DOC_END} section")
    DOC.write_text(pattern.sub(lambda _: f"{DOC_BEGIN}\n{text}\n{DOC_END}", doc), encoding="utf-8")


def as_json(volumes: list[Volume]) -> list[dict[str, Any]]:
    return [
        {
            "messages_per_month": v.messages_per_month,
            "usd_per_million": round(v.usd_per_million, 4),
            "fixed_usd_per_month": round(v.fixed_usd_per_month, 4),
            "lines": [{"name": line.name, "usd_per_million": round(line.usd_per_million, 4)} for line in v.lines],
        }
        for v in volumes
    ]


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
        help="assumed Send API / Messages API latency the reply function waits for (the sandbox answers in ~1 ms)",
    )
    parser.add_argument("--cold-share", type=float, default=0.01, help="assumed share of invocations that are cold")
    parser.add_argument("--extra-wru", type=float, default=0.0, help="add write units per message (what-if)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite the table in docs/cost.md")
    args = parser.parse_args(argv)
    print(
        f"cost: {args.messages} messages end to end on the local stack (after {args.warmup} warm-up) ...",
        file=sys.stderr,
        flush=True,
    )
    measured = run(args.messages, args.warmup)
    settings = template_settings()
    init = init_cost(settings.tracing_active)
    pm = per_message(measured, args.extra_wru)
    volumes = [model(pm, settings, init, v, args.provider_latency_ms, args.cold_share) for v in VOLUMES]
    # The same stack at the goal's volume deployed with TableCapacity=AutoScaled (template.yaml), the
    # capacity a Page with steady daily traffic would choose there.
    auto_scaled = model(pm, settings, init, GOAL_VOLUME, args.provider_latency_ms, args.cold_share, "AutoScaled")
    goal = next(v for v in volumes if v.messages_per_month == GOAL_VOLUME)
    wru_margin = (GOAL_USD_PER_MILLION - goal.usd_per_million) / PRICES["dynamodb_wru_per_million"]
    result: dict[str, Any] = {
        "volumes": as_json(volumes),
        "goal": {
            "messages_per_month": GOAL_VOLUME,
            "usd_per_million_max": GOAL_USD_PER_MILLION,
            "met": goal.usd_per_million < GOAL_USD_PER_MILLION,
            "margin_usd_per_million": round(GOAL_USD_PER_MILLION - goal.usd_per_million, 4),
            "margin_wru_per_message": round(wru_margin, 2),
            "auto_scaled_usd_per_million": round(auto_scaled.usd_per_million, 4),
            "met_auto_scaled": auto_scaled.usd_per_million < GOAL_USD_PER_MILLION,
        },
        # `volumes` prices the template's defaults (TableCapacity=OnDemand); this, the goal's volume auto scaled
        "auto_scaled": {"table_capacity": "AutoScaled", **as_json([auto_scaled])[0]},
        "per_message": asdict(pm),
        "settings": asdict(settings),
        "init": init,
        "memory": memory_choices(pm, init, args.provider_latency_ms),
        "functions": {
            fid: {k: v for k, v in f.items() if k not in ("durations_ms", "cpu_ms")}
            for fid, f in measured["functions"].items()
        },
        "units_by_call": units_by_call(measured),
        "storage": measured["storage"],
        "assumptions": {
            "provider_latency_ms": args.provider_latency_ms,
            "cold_share": args.cold_share,
            "extra_wru": args.extra_wru,
            "diurnal": DIURNAL,
        },
        "prices": PRICES,
    }
    if args.json:
        print(json.dumps(result, indent=2, default=list))
    else:
        print(render([*volumes, auto_scaled]))
        print(
            f"\ngoal: under ${GOAL_USD_PER_MILLION:.0f} per 1M at {GOAL_VOLUME / 1e6:g}M a month: "
            f"{'met' if result['goal']['met'] else 'MISSED'}, margin ${result['goal']['margin_usd_per_million']:,.2f}"
            f" ({wru_margin:+.1f} WRU a message); with TableCapacity=AutoScaled "
            f"${auto_scaled.usd_per_million:,.2f}: {'met' if result['goal']['met_auto_scaled'] else 'MISSED'}"
        )
    if not args.no_doc and not args.json:
        stamp = (
            f"bench.cost, {time.strftime('%Y-%m-%d')}: {args.messages} messages (half Meta, half Vonage), "
            f"provider latency {args.provider_latency_ms:.0f} ms, {args.cold_share:.0%} cold"
            + (f", {args.extra_wru:+g} WRU a message" if args.extra_wru else "")
        )
        write_doc(markdown([*volumes, auto_scaled], result["memory"], init, result["units_by_call"], stamp))
        print(f"\nwrote the table of {DOC.relative_to(ROOT)}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
