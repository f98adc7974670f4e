"""Shared benchmark plumbing: the local services, timing, statistics and the report table."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "messenger"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devkit.lambda_code import add_layers_to_path  # noqa: E402

add_layers_to_path()
from devkit.local_aws import LOCAL_CREDENTIALS, client  # noqa: E402
from local.services import create_events_table, running, seed_secrets, start_dynamodb_local, start_moto  # noqa: E402

BASE_ENV = {
    **LOCAL_CREDENTIALS,
    "AWS_REGION": LOCAL_CREDENTIALS["AWS_DEFAULT_REGION"],
    "POWERTOOLS_SERVICE_NAME": "messenger-webhook",
    "POWERTOOLS_METRICS_NAMESPACE": "MessengerWebhook",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


WRITES = frozenset({"put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items"})
READS = frozenset({"get_item", "query", "scan", "batch_get_item", "transact_get_items"})


class CountingClient:
    """Wraps a boto3 DynamoDB client and counts its table calls (writes and reads), thread-safely."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in WRITES | READS:
            return attribute

        def counted(**kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
            return attribute(**kwargs)

        return counted

    @property
    def writes(self) -> int:
        return sum(n for name, n in self.calls.items() if name in WRITES)

    @property
    def reads(self) -> int:
        return sum(n for name, n in self.calls.items() if name in READS)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()


def inversions(answered: list[str], written: list[str]) -> int:
    """Pairs of one person's replies that reached the provider in the other order than the messages were written
    (`answered`: the ids each reply answers, in arrival order; `written`: the message ids in the person's order)."""
    position = {mid: i for i, mid in enumerate(written)}
    ranks = [position[mid] for mid in answered if mid in position]
    return sum(1 for i, a in enumerate(ranks) for b in ranks[i + 1 :] if a > b)


@dataclass
class Stack:
    dynamodb_endpoint: str
    moto_endpoint: str
    table: str
    env: dict[str, str]


@contextlib.contextmanager
def local_stack() -> Iterator[Stack]:
    """DynamoDB Local + moto (Secrets Manager) with the events table and the sandbox secrets, like the tests."""
    dynamodb = start_dynamodb_local()
    moto = start_moto()
    with running(dynamodb, moto):
        table = f"bench-{uuid.uuid4().hex[:8]}"
        create_events_table(client("dynamodb", dynamodb.endpoint), table)
        names = {"meta": "bench/meta", "vonage": "bench/vonage"}
        seed_secrets(client("secretsmanager", moto.endpoint), names)
        env = {
            **BASE_ENV,
            "EVENTS_TABLE": table,
            "META_SECRET_ID": names["meta"],
            "VONAGE_SECRET_ID": names["vonage"],
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb.endpoint,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto.endpoint,
            "AWS_ENDPOINT_URL_SQS": moto.endpoint,
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            os.environ.pop(name, None)
        os.environ.update(env)
        yield Stack(dynamodb.endpoint, moto.endpoint, table, env)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send fd 1 to /dev/null (Powertools logs and metrics write there), so printing does not skew the figures."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def interleaved(runs: dict[str, Callable[[int], Any]], iterations: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each run(i) after `warmup` calls, taking turns call by call so that drift in the
    machine's load or in DynamoDB Local's JIT warm-up affects every subject alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + iterations):
        for name, run in runs.items():
            start = time.perf_counter()
            run(i)
            if i >= warmup:
                samples[name].append(time.perf_counter() - start)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def subprocess_seconds(code: str, env: dict[str, str], runs: int) -> list[float]:
    """Wall time of `code` (it prints its own seconds) in `runs` fresh interpreters."""
    results: list[float] = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout
        results.append(float(out.strip().splitlines()[-1]))
    return results


@dataclass
class Row:
    name: str
    subject: list[float]
    floor: list[float]
    goal: float
    unit: str = "ms"

    @property
    def ratio(self) -> float:
        return statistics.median(self.subject) / statistics.median(self.floor)

    def cells(self) -> list[str]:
        scale = 1000.0
        med, p90 = statistics.median(self.subject) * scale, percentile(self.subject, 0.9) * scale
        fmed, fp90 = statistics.median(self.floor) * scale, percentile(self.floor, 0.9) * scale
        verdict = "PASS" if self.ratio <= self.goal else "MISS"
        return [
            self.name,
            f"{med:.2f}",
            f"{p90:.2f}",
            f"{fmed:.2f}",
            f"{fp90:.2f}",
            f"{self.ratio:.2f}",
            f"<= {self.goal:.1f}",
            verdict,
        ]


def table(rows: list[Row]) -> str:
    header = ["benchmark", "median ms", "p90 ms", "floor median", "floor p90", "ratio", "goal", ""]
    lines = [header, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line))
        for line in lines
    ]
    rendered.insert(1, "-" * len(rendered[0]))
    return "\n".join(rendered)
