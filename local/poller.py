"""Emulate Lambda's DynamoDB stream event source mapping with the settings template.yaml declares.

What it does, per shard (local.template.StreamSettings):

- FilterCriteria (local.filters): records no pattern matches are dropped and checkpointed.
- BatchSize / MaximumBatchingWindowInSeconds: a batch is invoked when it is full or when its oldest record
  has waited the window.
- ReportBatchItemFailures: `{"batchItemFailures": [{"itemIdentifier": seq}]}` checkpoints the records before
  the lowest reported sequence number and retries from it (only the remainder, as Lambda does). An empty or
  null list is success; a malformed one, an unknown or empty identifier or a non-JSON response is a
  function error.
- BisectBatchOnFunctionError: on a function error (exception or invalid response) the batch is split in
  half and the halves are retried in order. Splitting does not count as a retry; a single record that
  keeps failing uses up the retries.
- MaximumRetryAttempts / MaximumRecordAgeInSeconds (from ApproximateCreationDateTime): records given up on go
  to the on-failure destination as Lambda's invocation record (DDBStreamBatchInfo, requestContext,
  responseContext) and are checkpointed, so the shard moves on.

- ParallelizationFactor: up to N batches of one shard are invoked at once. AWS documents in-order processing
  only "at the item (partition and sort key) level", so each record goes to one of N lanes by a hash of its
  full item key: one item's records (its insert, updates, delete) stay in one lane, in stream order, while
  two items of one partition key may run side by side and finish in either order. A lane that fails or
  retries holds back only its own items. Each lane calls its own `invoke` (one function instance per
  concurrent batch, as in Lambda).
- `split` (LOCAL_STREAM_SPLIT): DynamoDB Local has one shard, but in AWS shards split and nothing documents
  which child holds which key, so one conversation's records can sit in two child shards read at the same
  time. With `split` = N, each record of a shard goes to one of N virtual child shards by another hash of
  its full item key; each child has its own ParallelizationFactor lanes, all running concurrently.
- `order` (LOCAL_STREAM_ORDER): the records of one read are handed to the lanes in stream order (`stream`),
  or in the least favourable order the item-level guarantee still allows: `newest-first` (items in reverse
  stream order) or `shuffle`; either way one item's records keep their stream order.

Checkpoints are kept per shard in a CheckpointStore (memory, and a JSON file when given); a shard's
checkpoint is the last record before which every record of every lane (of every virtual child) is finished,
so the minimum over the children. A stopped poller finishes its in-flight invocations first, so a new poller
on the same store resumes after the last finished record: nothing is lost, and only records a lane finished
beyond the checkpoint are invoked again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.streams import StreamReader, strip_internal
from local.filters import matches_any, parse_pattern
from local.template import StreamSettings, key_schema

RETRY_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
ORDERS = ("stream", "newest-first", "shuffle")

Invoke = Callable[[dict[str, Any]], Any]
Log = Callable[[str], None]


class CheckpointStore:
    """Per-shard positions (sequence number of the last finished record) of one stream."""

    def __init__(self, stream_arn: str, path: Path | None = None) -> None:
        self.stream_arn = stream_arn
        self.path = path
        self._lock = threading.Lock()
        self.positions: dict[str, str] = {}
        if path is not None and path.exists():
            with contextlib.suppress(ValueError, OSError):
                saved = json.loads(path.read_text(encoding="utf-8"))
                if saved.get("stream_arn") == stream_arn:  # a file of an older (in-memory) table is ignored
                    self.positions = {str(k): str(v) for k, v in saved.get("positions", {}).items()}

    def get(self) -> dict[str, str]:
        with self._lock:
            return dict(self.positions)

    def save(self, shard_id: str, sequence_number: str) -> None:
        with self._lock:
            self.positions[shard_id] = sequence_number
            if self.path is None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"stream_arn": self.stream_arn, "positions": self.positions}), "utf-8")
            tmp.replace(self.path)


@dataclass
class Outcome:
    ok: bool
    failed_from: int | None = None  # partial batch failure: the lowest reported sequence number
    error: str | None = None  # function error (exception or invalid response)
    duration_ms: float = 0.0

    @property
    def response_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if self.error is not None:
            context["functionError"] = "Unhandled"
        return context


@dataclass
class _Entry:
    record: dict[str, Any]
    seen_at: float


@dataclass
class _Lane:
    child: int  # the virtual child shard (always 0 unless the poller splits shards)
    index: int  # the ParallelizationFactor lane within it
    invoke: Invoke
    buffer: deque[_Entry] = field(default_factory=deque)  # records the filter matched, not yet finished
    busy: bool = False


@dataclass
class _Shard:
    """One shard's lanes (of all its virtual children) and the records read from it that are not yet finished
    (for the checkpoint)."""

    shard_id: str
    lanes: list[_Lane]
    pending: deque[str] = field(default_factory=deque)  # sequence numbers read, in shard order
    finished: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class PollerStats:
    invocations: int = 0
    records_invoked: int = 0
    succeeded: int = 0
    partial_failures: int = 0
    function_errors: int = 0
    bisections: int = 0
    retries: int = 0
    filtered: int = 0
    sent_to_on_failure: int = 0
    on_failure_messages: int = 0
    last_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "history"}
        data["history"] = self.history[-50:]
        return data


def seq(record: dict[str, Any]) -> int:
    return int(record["dynamodb"]["SequenceNumber"])


def _span(batch: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The records with the lowest and the highest sequence number (a batch handed out of stream order)."""
    return min(batch, key=seq), max(batch, key=seq)


def _cut(batch: list[dict[str, Any]], failed_from: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A partially failed batch: the records before the lowest reported sequence number (done) and the rest."""
    return [r for r in batch if seq(r) < failed_from], [r for r in batch if seq(r) >= failed_from]


def _short(shard_id: str) -> str:
    return "…" + shard_id[-8:]


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StreamPoller:
    def __init__(
        self,
        reader: StreamReader,
        invoke: Invoke,
        settings: StreamSettings,
        checkpoints: CheckpointStore,
        *,
        on_failure: Callable[[dict[str, Any]], None] | None = None,
        function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:ReplyFunction",
        poll_interval_s: float = 0.25,
        retry_delay_s: float = 0.2,
        clock: Callable[[], float] = time.time,
        log: Log = print,
        name: str = "poller",
        lane_invoke: Callable[[int], Invoke] | None = None,
        split: int = 1,
        order: str = "stream",
        seed: int | None = None,
    ) -> None:
        """`lane_invoke(i)` gives lane i its own `invoke` (i < split x ParallelizationFactor, child by child);
        `split`, `order` and `seed` (for `shuffle`) are described in the module's docstring."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.reader = reader
        self.invoke = invoke
        self.settings = settings
        self.patterns = [parse_pattern(p) for p in settings.filter_patterns]
        self.checkpoints = checkpoints
        self.on_failure = on_failure
        self.function_arn = function_arn
        self.poll_interval_s = poll_interval_s
        self.retry_delay_s = retry_delay_s
        self.clock = clock
        self.log = log
        self.name = name
        self.stats = PollerStats()
        self.factor = max(1, settings.parallelization_factor)
        self.split = max(1, split)
        self.lanes = self.factor * self.split  # lanes per real shard, all of its virtual children together
        self.order = order
        self.key_names = key_schema()
        self._random = random.Random(seed)
        self._lane_invokers = [lane_invoke(i) if lane_invoke else invoke for i in range(self.lanes)]
        self._shards: dict[str, _Shard] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stats_lock = threading.Lock()
        self._pool = (
            ThreadPoolExecutor(max_workers=self.lanes * 4, thread_name_prefix=f"{name}-lane")
            if self.lanes > 1
            else None
        )
        self._futures: set[Future[None]] = set()

    # -- thread -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 90) -> None:
        """Stop after the in-flight invocations (if any) have finished and been checkpointed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._wait_for_lanes(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def idle(self) -> bool:
        """Nothing buffered and not invoking: every record read so far has been finished."""
        return not any(lane.busy or lane.buffer for shard in list(self._shards.values()) for lane in shard.lanes)

    def _wait_for_lanes(self, timeout: float | None = None) -> None:
        wait(list(self._futures), timeout=timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 - keep polling; the stream may be briefly unavailable
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self.log(f"[{self.name}] polling failed ({self.stats.last_error}); re-reading from checkpoints")
                self.rewind()
                self._stop.wait(1.0)
            self._stop.wait(self.poll_interval_s)

    # -- one cycle --------------------------------------------------------------------------------

    def rewind(self) -> None:
        self._wait_for_lanes()
        self._shards.clear()
        self.reader.positions = self.checkpoints.get()
        self.reader.rewind()

    def item_key(self, record: dict[str, Any]) -> bytes:
        """The record's full item key (partition and sort key, in the table's key schema order)."""
        keys = record["dynamodb"].get("Keys") or {}
        return json.dumps([keys.get(name) for name in self.key_names], sort_keys=True).encode()

    def lane_of(self, record: dict[str, Any]) -> int:
        """The record's lane within its (virtual child) shard: a stable hash of its full item key, so one
        item always takes one lane, and the items of one partition key spread over the lanes."""
        return zlib.crc32(self.item_key(record)) % self.factor if self.factor > 1 else 0

    def child_of(self, record: dict[str, Any]) -> int:
        """The virtual child shard of a record when shards are split: another stable hash of its full item key."""
        return zlib.crc32(b"child:" + self.item_key(record)) % self.split if self.split > 1 else 0

    def arrange(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records of one read in the order the lanes get them (`order`); one item's records keep theirs."""
        if self.order == "stream":
            return records
        rank: dict[bytes, float] = {}
        for position, record in enumerate(records):
            key = self.item_key(record)
            if key not in rank:
                rank[key] = -position if self.order == "newest-first" else self._random.random()
        return sorted(records, key=lambda record: rank[self.item_key(record)])  # stable within an item

    def _shard(self, shard_id: str) -> _Shard:
        if shard_id not in self._shards:
            lanes = [_Lane(i // self.factor, i % self.factor, invoke) for i, invoke in enumerate(self._lane_invokers)]
            self._shards[shard_id] = _Shard(shard_id, lanes)
        return self._shards[shard_id]

    def run_once(self) -> int:
        """Read new records, then start every lane that has a batch ready. Returns the number of records read.

        With one lane the batches run here, before it returns; with more, each lane runs on a worker thread.
        """
        records = self.reader.poll()
        now = time.monotonic()
        dropped: dict[str, list[dict[str, Any]]] = {}
        for record in records:  # stream order: the checkpoint follows it, whatever order the lanes get
            shard = self._shard(record["_shard"])
            with shard.lock:
                shard.pending.append(record["dynamodb"]["SequenceNumber"])
        for record in self.arrange(records):
            shard = self._shard(record["_shard"])
            if not matches_any(self.patterns, strip_internal(record)):
                dropped.setdefault(shard.shard_id, []).append(record)
                continue
            lane = shard.lanes[self.child_of(record) * self.factor + self.lane_of(record)]
            with shard.lock:
                lane.buffer.append(_Entry(record, now))
        for shard_id, rejected in dropped.items():
            shard = self._shards[shard_id]
            with shard.lock:
                self._commit(shard, None, rejected)
            with self._stats_lock:
                self.stats.filtered += len(rejected)
            self.log(f"[{self.name}] shard {_short(shard_id)}: {len(rejected)} record(s) dropped by FilterCriteria")
        for shard in list(self._shards.values()):
            for lane in shard.lanes:
                self._start(shard, lane)
        return len(records)

    def _start(self, shard: _Shard, lane: _Lane) -> None:
        with shard.lock:
            if lane.busy or not lane.buffer or self._stop.is_set():
                return
            lane.busy = True
        if self._pool is None:
            self._process_lane(shard, lane)
            return
        future = self._pool.submit(self._process_lane, shard, lane)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    def drain(self, timeout: float = 30) -> None:
        """Run cycles until everything read has been finished and a read finds nothing new (tests, benchmarks).

        While lanes are invoking it does not read on: DynamoDB Local's stream reads slow its writes down once
        its streams hold a few thousand records, and the records read so far keep the lanes busy anyway."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            read = self.run_once()
            if read == 0 and self.idle:
                return
            time.sleep(0.05)
            while self._invoking and time.monotonic() < deadline:
                time.sleep(0.05)
        raise TimeoutError("stream not drained in time")

    @property
    def _invoking(self) -> bool:
        return any(lane.busy for shard in list(self._shards.values()) for lane in shard.lanes)

    def _process_lane(self, shard: _Shard, lane: _Lane) -> None:
        try:
            while not self._stop.is_set():
                batch = self._ready_batch(shard, lane)
                if not batch or not self._run_batch(shard, lane, batch):
                    return
        except Exception as exc:  # noqa: BLE001 - a lane must never die silently; the records stay buffered
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            self.log(f"[{self.name}] lane {lane.index} failed ({self.stats.last_error})")
        finally:
            with shard.lock:
                lane.busy = False

    def _ready_batch(self, shard: _Shard, lane: _Lane) -> list[dict[str, Any]]:
        """The lane's next batch, once full or its window has passed."""
        with shard.lock:
            batch = list(lane.buffer)[: self.settings.batch_size]
        if not batch:
            return []
        waited = time.monotonic() - batch[0].seen_at
        if len(batch) < self.settings.batch_size and waited < self.settings.batching_window_s:
            return []
        return [e.record for e in batch]

    def _where(self, shard_id: str, lane: _Lane) -> str:
        child = f" child {lane.child}" if self.split > 1 else ""
        return f"shard {_short(shard_id)}{child}" + (f" lane {lane.index}" if self.factor > 1 else "")

    def _finish(self, shard: _Shard, lane: _Lane, records: list[dict[str, Any]]) -> None:
        with shard.lock:
            self._commit(shard, lane, records)

    def _commit(self, shard: _Shard, lane: _Lane | None, records: list[dict[str, Any]]) -> None:
        """Finish `records` (taking them out of the lane's buffer) and move the shard's checkpoint over every
        record that is now finished in all lanes. Call with the shard's lock held."""
        done = {r["dynamodb"]["SequenceNumber"] for r in records}
        if lane is not None:
            lane.buffer = deque(e for e in lane.buffer if e.record["dynamodb"]["SequenceNumber"] not in done)
        shard.finished |= done
        checkpoint = None
        while shard.pending and shard.pending[0] in shard.finished:
            checkpoint = shard.pending.popleft()
            shard.finished.discard(checkpoint)
        if checkpoint is not None:
            self.checkpoints.save(shard.shard_id, checkpoint)

    # -- the event source mapping's retry rules ---------------------------------------------------

    def _run_batch(self, shard: _Shard, lane: _Lane, records: list[dict[str, Any]]) -> bool:
        """Invoke until every record of the batch is finished or given up. False if stopped part-way."""
        work: list[tuple[list[dict[str, Any]], int]] = [(records, 0)]
        while work:
            if self._stop.is_set():
                return False
            batch, retries = work.pop(0)
            batch = self._expire(shard, lane, batch, retries)
            if not batch:
                continue
            outcome = self._invoke(shard, lane, batch, retries)
            if outcome.ok:
                self._finish(shard, lane, batch)
                continue
            if outcome.failed_from is not None:
                done, rest = _cut(batch, outcome.failed_from)
                if done:
                    self._finish(shard, lane, done)
                self._retry_or_give_up(work, shard, lane, rest, retries + 1, outcome)
                continue
            if self.settings.bisect_on_error and len(batch) > 1:
                half = len(batch) // 2
                with self._stats_lock:
                    self.stats.bisections += 1
                self.log(
                    f"[{self.name}] {self._where(shard.shard_id, lane)}: bisecting "
                    f"{len(batch)} records into {half} + {len(batch) - half}"
                )
                work[0:0] = [(batch[:half], retries), (batch[half:], retries)]
                continue
            self._retry_or_give_up(work, shard, lane, batch, retries + 1, outcome)
        return True

    def _retry_or_give_up(
        self,
        work: list[tuple[list[dict[str, Any]], int]],
        shard: _Shard,
        lane: _Lane,
        batch: list[dict[str, Any]],
        retries: int,
        outcome: Outcome,
    ) -> None:
        limit = self.settings.maximum_retry_attempts
        if 0 <= limit < retries:
            self._give_up(shard, lane, batch, RETRY_EXHAUSTED, retries, outcome)
            return
        with self._stats_lock:
            self.stats.retries += 1
        left = "unlimited" if limit < 0 else str(limit - retries + 1)
        self.log(
            f"[{self.name}] {self._where(shard.shard_id, lane)}: retry {retries} of {len(batch)} record(s) from seq "
            f"{batch[0]['dynamodb']['SequenceNumber']} ({left} attempt(s) left)"
        )
        self._stop.wait(min(self.retry_delay_s * (2 ** (retries - 1)), 5.0))
        work.insert(0, (batch, retries))

    def _expire(self, shard: _Shard, lane: _Lane, batch: list[dict[str, Any]], retries: int) -> list[dict[str, Any]]:
        max_age = self.settings.maximum_record_age_s
        if max_age < 0:
            return batch
        now = self.clock()
        expired = 0
        for record in batch:
            created = record["dynamodb"].get("ApproximateCreationDateTime")
            if created is None or now - float(created) <= max_age:
                break
            expired += 1
        if expired:
            self._give_up(shard, lane, batch[:expired], RECORD_AGE_EXCEEDED, retries, None)
        return batch[expired:]

    def _give_up(
        self,
        shard: _Shard,
        lane: _Lane,
        batch: list[dict[str, Any]],
        condition: str,
        invokes: int,
        outcome: Outcome | None,
    ) -> None:
        message = self.failure_record(shard.shard_id, batch, condition, invokes, outcome)
        with self._stats_lock:
            self.stats.sent_to_on_failure += len(batch)
            self.stats.on_failure_messages += 1
        where = "on-failure destination" if self.on_failure else "nowhere (no destination): discarded"
        info = message["DDBStreamBatchInfo"]
        self.log(
            f"[{self.name}] {self._where(shard.shard_id, lane)}: giving up on {len(batch)} record(s) "
            f"seq {info['startSequenceNumber']}..{info['endSequenceNumber']} ({condition}) -> {where}"
        )
        if self.on_failure is not None:
            self.on_failure(message)
        self._finish(shard, lane, batch)

    def failure_record(
        self, shard_id: str, batch: list[dict[str, Any]], condition: str, invokes: int, outcome: Outcome | None
    ) -> dict[str, Any]:
        """Lambda's on-failure invocation record for a DynamoDB stream batch (of the real shard: tools/redrive.py
        reads the records back from it)."""
        first, last = (record["dynamodb"] for record in _span(batch))
        return {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": invokes,
            },
            "responseContext": outcome.response_context if outcome else {"executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime")),
                "batchSize": len(batch),
                "streamArn": batch[0]["eventSourceARN"],
            },
        }

    def _invoke(self, shard: _Shard, lane: _Lane, batch: list[dict[str, Any]], retries: int) -> Outcome:
        event = {"Records": [strip_internal(r) for r in batch]}
        started = time.monotonic()
        try:
            response = lane.invoke(event)
            outcome = self._judge(response, batch)
        except Exception as exc:  # noqa: BLE001 - any exception is a function error, as in Lambda
            outcome = Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        outcome.duration_ms = (time.monotonic() - started) * 1000
        with self._stats_lock:
            self._record(shard.shard_id, lane, batch, retries, outcome)
        return outcome

    def _judge(self, response: Any, batch: list[dict[str, Any]]) -> Outcome:
        try:
            json.dumps(response)
        except (TypeError, ValueError):
            return Outcome(ok=False, error="invalid response: not JSON-serialisable")
        if not self.settings.report_batch_item_failures or response is None:
            return Outcome(ok=True)
        if not isinstance(response, dict):
            return Outcome(ok=False, error="invalid response: not an object")
        failures = response.get("batchItemFailures")
        if not failures:
            return Outcome(ok=True)
        if not isinstance(failures, list):
            return Outcome(ok=False, error="invalid response: batchItemFailures is not a list")
        in_batch = {r["dynamodb"]["SequenceNumber"] for r in batch}
        failed: list[int] = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if not isinstance(identifier, str) or identifier not in in_batch:
                return Outcome(ok=False, error=f"invalid response: itemIdentifier {identifier!r} not in the batch")
            failed.append(int(identifier))
        return Outcome(ok=False, failed_from=min(failed))

    def _record(self, shard_id: str, lane: _Lane, batch: list[dict[str, Any]], retries: int, outcome: Outcome) -> None:
        stats = self.stats
        stats.invocations += 1
        stats.records_invoked += len(batch)
        if outcome.ok:
            stats.succeeded += len(batch)
            result = "ok"
        elif outcome.failed_from is not None:
            done = len(_cut(batch, outcome.failed_from)[0])
            stats.partial_failures += 1
            stats.succeeded += done
            result = f"{len(batch) - done} failed (batchItemFailures), {done} done"
        else:
            stats.function_errors += 1
            stats.last_error = outcome.error
            result = f"function error: {outcome.error}"
        first, last = batch[0]["dynamodb"]["SequenceNumber"], batch[-1]["dynamodb"]["SequenceNumber"]
        stats.history.append(
            {
                "shard": shard_id,
                "child": lane.child,
                "lane": lane.index,
                "size": len(batch),
                "first": first,
                "last": last,
                "attempt": retries + 1,
                "ok": outcome.ok,
                "failed_from": outcome.failed_from,
                "error": outcome.error,
            }
        )
        del stats.history[:-200]
        self.log(
            f"[{self.name}] invoke {self._where(shard_id, lane)}: {len(batch)} record(s) seq {first}..{last} "
            f"attempt {retries + 1} -> {result} ({outcome.duration_ms:.0f} ms)"
        )
