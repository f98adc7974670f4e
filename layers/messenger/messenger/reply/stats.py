"""Reply metrics: collected by the worker threads, emitted once per invocation by the main thread."""

from __future__ import annotations

import threading

from aws_lambda_powertools.metrics import MetricUnit

from messenger.observability import metrics


class ReplyStats:
    MAX_LATENCIES = 100

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.latencies: list[float] = []
        self.end_to_end: list[float] = []  # ReplyLatency: the user's message timestamp to the provider's accept

    def inc(self, name: str, value: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + value

    def latency(self, ms: float) -> None:
        with self._lock:
            if len(self.latencies) < self.MAX_LATENCIES:
                self.latencies.append(ms)

    def reply_latency(self, ms: float) -> None:
        with self._lock:
            if len(self.end_to_end) < self.MAX_LATENCIES:
                self.end_to_end.append(max(0.0, ms))

    def flush(self) -> None:
        with self._lock:
            counts, latencies, end_to_end = self.counts, self.latencies, self.end_to_end
            self.counts, self.latencies, self.end_to_end = {}, [], []
        for name, value in counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        for ms in latencies:
            metrics.add_metric(name="ProviderLatency", unit=MetricUnit.Milliseconds, value=round(ms, 1))
        for ms in end_to_end:
            metrics.add_metric(name="ReplyLatency", unit=MetricUnit.Milliseconds, value=round(ms, 1))


STATS = ReplyStats()
