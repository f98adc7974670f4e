"""Reply pipeline benchmark: concurrency gain, sustained throughput, table calls per reply, JWT reuse, memory.

    python -m bench.reply        (or bench.reply.main() from the bench runner)

Real DynamoDB Local table (claims and outbound items are real writes, counted by wrapping the client);
a tiny threaded HTTP server on 127.0.0.1 plays the Send API / Messages API with a fixed latency and records
which person each send went to and which message it answers (its `metadata`). The "pipeline only" rows swap
in the in-memory store (devkit.memory_store) to isolate the pipeline's own cost. The "lanes" rows store
the messages in the table and read them back from its stream through the local poller (local/poller.py):
the template's event source mapping with ParallelizationFactor lanes by full item key, once in stream order
and once split into two child shards handed out newest first, and count the replies that reached the
provider out of their person's order. Secrets come from events/sandbox-secrets.json directly (no Secrets
Manager in the loop).
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import LAYER, CountingClient, inversions  # noqa: F401  (LAYER puts the layer on sys.path)
from devkit.local_aws import LOCAL_CREDENTIALS, client
from devkit.sandbox_secrets import sandbox_secrets
from local.services import create_events_table, start_dynamodb_local


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # must be set before listen(): the default backlog of 5 resets connections


class _Handler(BaseHTTPRequestHandler):
    """Answers like the Send API (200 + message_id) and the Messages API (202 + message_uuid)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go as two writes: avoid 40 ms delayed-ACK stalls
    latency_s = 0.0
    counter: Any = None
    sends: list[tuple[str, str]] = []  # (recipient, metadata) of each Send API call, in arrival order
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.counter.get_lock():
            self.counter.value += 1
        if not self.path.startswith("/v1/messages"):
            body = json.loads(raw)
            with self.lock:
                self.sends.append((body["recipient"]["id"], body["message"].get("metadata", "")))
        time.sleep(self.latency_s)
        if self.path.startswith("/v1/messages"):
            status, body = 202, {"message_uuid": str(uuid.uuid4())}
        else:
            status, body = 200, {"recipient_id": "x", "message_id": f"m_{uuid.uuid4().hex}"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        with self.lock:
            data = json.dumps(self.sends).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return


def _serve(latency_s: float, counter: Any, port_pipe: Any) -> None:
    _Handler.latency_s, _Handler.counter = latency_s, counter
    server = _Server(("127.0.0.1", 0), _Handler)
    port_pipe.send(server.server_address[1])
    server.serve_forever()


class FakeProvider:
    """The provider, after `latency_s`, in its own process: its threads must not take the pipeline's GIL."""

    def __init__(self, latency_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._counter = context.Value("i", 0)
        receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_serve, args=(latency_s, self._counter, sender), daemon=True)
        self._process.start()
        self.port = receiver.recv()

    @property
    def requests(self) -> int:
        return int(self._counter.value)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sends(self) -> list[tuple[str, str]]:
        """(recipient, metadata) of every Send API call so far, in the order they arrived."""
        from devkit.http_client import http

        return [(recipient, metadata) for recipient, metadata in http("GET", f"{self.url}/sends")[1]]

    def close(self) -> None:
        self._process.terminate()
        self._process.join(timeout=5)


def make_records(n: int, conversations: int, provider: str = "meta", page: str = "107083064136738") -> list[dict]:
    """Stream INSERT records of `n` inbound messages spread over `conversations`, as the table streams them."""
    from devkit.payloads import stream_record
    from messenger.events import Event, Kind, Provider
    from messenger.storage import event_item

    now = int(time.time() * 1000)
    run = uuid.uuid4().hex[:8]
    records = []
    for i in range(n):
        event = Event(
            provider=Provider(provider),
            event_id=f"bench-{run}-{i}",
            kind=Kind.MESSAGE,
            page_id=page,
            user_id=f"{9_000_000_000_000_000 + i % conversations}",
            timestamp_ms=now + i,
            text="hello, what are your opening hours?",
        )
        image = event_item(event, now_s=now // 1000, retention_s=86400)
        records.append(stream_record(image, event_id=event.event_id, sequence=i + 1))
        _EVENTS[event.event_id] = event
    return records


_EVENTS: dict[str, Any] = {}  # the messages of make_records' records, by event id, until stage() stores them


def build(table: str, endpoint: str, base: str, workers: int) -> tuple[Any, Any, CountingClient]:
    from botocore.config import Config

    from messenger.providers.meta.send import MetaSendClient, MetaSender
    from messenger.providers.vonage.send import VonageSendClient, VonageSender
    from messenger.reply.ledger import ReplyLedger
    from messenger.reply.pipeline import ReplyPipeline
    from messenger.reply.responder import RuleResponder
    from messenger.reply.stats import ReplyStats
    from messenger.secrets import MetaSecret, VonageSecret
    from messenger.storage import DynamoStore

    secrets = sandbox_secrets()
    meta, vonage = MetaSecret(**secrets["meta"]), VonageSecret(**secrets["vonage"])
    dynamodb = __import__("boto3").client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(max_pool_connections=workers + 4, retries={"mode": "standard", "max_attempts": 3}),
    )
    counting = CountingClient(dynamodb)
    vonage_client = VonageSendClient(base, pool_size=workers)
    pipeline = ReplyPipeline(
        ledger=ReplyLedger(DynamoStore(table, client=counting)),
        responder=RuleResponder(),
        senders={
            "meta": MetaSender(MetaSendClient(base, "v25.0", pool_size=workers), lambda: meta),
            "vonage": VonageSender(vonage_client, lambda: vonage),
        },
        stats=ReplyStats(),
    )
    return pipeline, vonage_client, counting


def memory_ledger() -> Any:
    from devkit.memory_store import MemoryStore
    from messenger.reply.ledger import ReplyLedger

    return ReplyLedger(MemoryStore())


def dynamodb_local_ceiling(
    table: str, endpoint: str, calls_per_reply: float, threads: int = 32, calls: int = 1200
) -> dict[str, Any]:
    """DynamoDB Local's own rate for claim-sized PutItems from `threads` threads: the most table calls per
    second any pipeline can get from it on this machine (no pipeline, no provider in the loop), and so the
    most answered messages per second at `calls_per_reply` table calls each."""
    from concurrent.futures import ThreadPoolExecutor

    from messenger.storage import NewClaim

    pipeline, _, counted = build(table, endpoint, "http://127.0.0.1:9", threads)
    store = pipeline.ledger.store
    run_id = uuid.uuid4().hex[:8]

    def put(i: int) -> None:
        store.claim_reply(NewClaim(f"meta#page#ceiling-{i % 100}", f"{run_id}-{i}", "meta", "t", 0))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, range(200)))  # warm-up
        started = time.perf_counter()
        list(pool.map(put, range(200, 200 + calls)))
        elapsed = time.perf_counter() - started
    per_s = calls / elapsed
    return {
        "threads": threads,
        "puts": calls,
        "calls_per_s": round(per_s),
        "calls_per_reply": calls_per_reply,
        "sends_per_s_ceiling": round(per_s / calls_per_reply),
    }


def batch_function(pipeline: Any, workers: int) -> Any:
    """The reply function's batch processing (functions/reply/app.py) around `pipeline`: event -> response.
    Each invocation has the template's timeout as its deadline, as in Lambda: the conversation's turn is a
    lease until that deadline (messenger/reply/turn.py)."""
    from aws_lambda_powertools.utilities.batch import process_partial_response

    from local.template import function_spec
    from messenger.reply.batch import ConversationOrderedProcessor

    timeout_s = function_spec("ReplyFunction").timeout_s

    def invoke(event: dict[str, Any]) -> Any:
        deadline = time.monotonic() + timeout_s

        def remaining_ms() -> int:
            return int((deadline - time.monotonic()) * 1000)

        def handler(records: list[Any], lambda_context: Any) -> dict[str, str]:
            return pipeline.answer([record.inbound for record in records], remaining_ms)  # one conversation's

        processor = ConversationOrderedProcessor(max_workers=workers, finish=None)
        return process_partial_response(event, handler, processor)

    return invoke


def stage(pipeline: Any, records: list[dict]) -> list[dict]:
    """Store the messages of make_records' `records` in the pipeline's store, as the webhook would have: the
    table, not the stream, says what is pending. Returns the records."""
    for record in records:
        pipeline.ledger.store.store_event(_EVENTS.pop(record["eventID"]))
    return records


def run(pipeline: Any, records: list[dict], workers: int, batch_size: int) -> tuple[float, int]:
    """Answer staged `records` in batches of `batch_size`, timed; (seconds, records reported failed)."""
    invoke = batch_function(pipeline, workers)
    failures = 0
    started = time.perf_counter()
    for start in range(0, len(records), batch_size):
        failures += len(invoke({"Records": records[start : start + batch_size]})["batchItemFailures"])
    return time.perf_counter() - started, failures


def lanes_run(
    endpoint: str, provider: FakeProvider, n: int, conversations: int, *, split: int = 1, order: str = "stream"
) -> dict[str, Any]:
    """`n` messages of `conversations` people stored in a fresh table (each person's in the order written),
    then answered from its stream through the local poller with the template's settings (no batching window),
    each lane invoking the batch processing; sends/s and the replies that reached the provider out of order.

    The floor, measured right before: the same number of records of as many people through the batch
    processing alone, in the template's batch size, one batch after the other. DynamoDB Local slows down as
    the process writes to it (about 4x after the rows above), so only the ratio compares across runs."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from devkit.streams import StreamReader
    from local.poller import CheckpointStore, StreamPoller
    from local.template import stream_settings
    from messenger.events import Event, Kind, Provider
    from messenger.handover import answered_event_id
    from messenger.storage import DynamoStore

    table = f"bench-lanes-{uuid.uuid4().hex[:8]}"
    stream_arn = create_events_table(client("dynamodb", endpoint), table)
    pipeline, _, counted = build(table, endpoint, provider.url, 32)
    store, now, run_id = DynamoStore(table, client=counted), int(time.time() * 1000), uuid.uuid4().hex[:8]
    written: dict[str, list[str]] = {f"{9_100_000_000_000_000 + c}": [] for c in range(conversations)}
    for i in range(n):
        written[f"{9_100_000_000_000_000 + i % conversations}"].append(f"lanes-{run_id}-{i}")

    def write(user: str) -> None:
        for k, event_id in enumerate(written[user]):
            event = Event(
                provider=Provider.META,
                event_id=event_id,
                kind=Kind.MESSAGE,
                page_id="107083064136738",
                user_id=user,
                timestamp_ms=now + k,
                text="hello, what are your opening hours?",
            )
            store.store_event(event)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, written))
    settings = replace(stream_settings(), batching_window_s=0)
    floor_table = f"bench-floor-{uuid.uuid4().hex[:8]}"
    create_events_table(client("dynamodb", endpoint), floor_table)
    floor = build(floor_table, endpoint, provider.url, 32)[0]
    floor_s, _ = run(floor, stage(floor, make_records(n, conversations)), workers=32, batch_size=settings.batch_size)
    reader = StreamReader(client("dynamodbstreams", endpoint), stream_arn, "TRIM_HORIZON")
    poller = StreamPoller(
        reader,
        batch_function(pipeline, 32),
        settings,
        CheckpointStore(stream_arn),
        log=lambda _: None,
        split=split,
        order=order,
    )
    before = len(provider.sends())
    started = time.perf_counter()
    try:
        poller.drain(timeout=600)
        drained = True
    except TimeoutError:  # reported below (unanswered), not a crash that loses every other figure
        drained = False
    elapsed = time.perf_counter() - started
    answered: dict[str, list[str]] = {}
    for recipient, metadata in provider.sends()[before:]:
        answered.setdefault(recipient, []).append(answered_event_id(metadata) or "")
    out_of_order = {user: inversions(answered.get(user, []), mids) for user, mids in written.items()}
    replies = sum(len(ids) for ids in answered.values())
    return {
        "records": n,
        "conversations": conversations,
        "lanes": settings.parallelization_factor,
        "batch_size": settings.batch_size,
        "split": split,
        "order": order,
        "drained": drained,
        "seconds": round(elapsed, 2),
        "sends_per_s": round(replies / elapsed),
        "floor_sends_per_s": round(n / floor_s),
        "ratio_to_floor": round(replies / elapsed / (n / floor_s), 2),
        "unanswered": sum(1 for mids in written.values() for mid in mids)
        - len({i for ids in answered.values() for i in ids}),
        "duplicates": replies - len({i for ids in answered.values() for i in ids}),
        "inversions": sum(out_of_order.values()),
        "conversations_out_of_order": sum(1 for count in out_of_order.values() if count),
        "function_errors": poller.stats.function_errors,
    }


class _Shown(dict[str, Any]):
    """The results, each also printed (stderr) the moment it is measured: a later failure loses nothing."""

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        print(json.dumps({key: value}), file=sys.stderr, flush=True)


def lanes_rows(results: dict[str, Any], provider: FakeProvider) -> None:
    """Messages read back from a table's stream by the poller: lanes by full item key, then two child shards
    handed out newest first; 10 messages per person, so their order matters. Each on a DynamoDB Local of its
    own: one that has taken the rows above is several times slower, and the floor must see the same one."""
    for name, options in (("lanes", {}), ("lanes_split_newest_first", {"split": 2, "order": "newest-first"})):
        fresh = start_dynamodb_local()
        try:
            results[name] = lanes_run(fresh.endpoint, provider, 1000, 100, **options)
        finally:
            fresh.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import argparse
    import logging

    parser = argparse.ArgumentParser(prog="python -m bench.reply", description=__doc__)
    parser.add_argument("--lanes-only", action="store_true", help="only the two stream-lanes rows")
    args = parser.parse_args(argv)

    logging.getLogger("messenger-webhook").setLevel(logging.WARNING)
    from messenger.observability import logger

    logger.setLevel("WARNING")
    if args.lanes_only:
        results: dict[str, Any] = _Shown()
        fast = FakeProvider(0.010)
        try:
            lanes_rows(results, fast)
        finally:
            fast.close()
        return results
    dynamodb_local = start_dynamodb_local()
    results = _Shown()
    try:
        endpoint = dynamodb_local.endpoint
        table = f"bench-{uuid.uuid4().hex[:8]}"
        create_events_table(client("dynamodb", endpoint), table)

        slow = FakeProvider(0.100)
        try:
            concurrent, _, counted = build(table, endpoint, slow.url, 32)
            sequential, _, _ = build(table, endpoint, slow.url, 1)
            # Warm DynamoDB Local's JIT and both clients' connections first, as a warm Lambda's would be.
            run(concurrent, stage(concurrent, make_records(100, 50)), workers=32, batch_size=100)
            run(sequential, stage(sequential, make_records(10, 10)), workers=1, batch_size=10)
            records = stage(concurrent, make_records(100, 50))
            counted.reset()
            t_conc, f1 = run(concurrent, records, workers=32, batch_size=100)
            calls = dict(counted.calls)
            results["table_calls_per_reply"] = {
                "writes": round(counted.writes / 100, 2),
                "reads": round(counted.reads / 100, 2),
                "calls": calls,
            }
            t_seq, f2 = run(sequential, stage(sequential, make_records(100, 50)), workers=1, batch_size=100)
            results["concurrency"] = {
                "records": 100,
                "conversations": 50,
                "provider_latency_ms": 100,
                "concurrent_s": round(t_conc, 3),
                "sequential_s": round(t_seq, 3),
                "ratio": round(t_seq / t_conc, 1),
                "failures": f1 + f2,
                "requests": slow.requests,
            }
            concurrent.ledger, sequential.ledger = memory_ledger(), memory_ledger()
            t_conc, _ = run(concurrent, stage(concurrent, make_records(100, 50)), workers=32, batch_size=100)
            t_seq, _ = run(sequential, stage(sequential, make_records(100, 50)), workers=1, batch_size=100)
            results["concurrency_pipeline_only"] = {
                "ledger": "in-memory",
                "concurrent_s": round(t_conc, 3),
                "sequential_s": round(t_seq, 3),
                "ratio": round(t_seq / t_conc, 1),
            }
        finally:
            slow.close()

        fast = FakeProvider(0.010)
        try:
            pipeline, vonage_client, counted = build(table, endpoint, fast.url, 32)
            run(pipeline, stage(pipeline, make_records(100, 100)), workers=32, batch_size=100)  # warm-up
            n = 2000
            records = stage(pipeline, make_records(n, 1000))
            counted.reset()
            started = time.perf_counter()
            elapsed, failures = run(pipeline, records, workers=32, batch_size=100)
            results["throughput"] = {
                "records": n,
                "conversations": 1000,
                "provider_latency_ms": 10,
                "batch_size": 100,
                "seconds": round(elapsed, 2),
                "sends_per_s": round(n / elapsed),
                "failures": failures,
                "table_calls_per_s": round((counted.writes + counted.reads) / (time.perf_counter() - started)),
            }
            elapsed25, _ = run(pipeline, stage(pipeline, make_records(n, 1000)), workers=32, batch_size=25)
            results["throughput_batch25"] = {"records": n, "sends_per_s": round(n / elapsed25)}
            before = vonage_client.jwts.signatures
            run(pipeline, stage(pipeline, make_records(1000, 500, provider="vonage")), workers=32, batch_size=100)
            results["vonage_jwt"] = {"sends": 1000, "signatures": vonage_client.jwts.signatures - before}
            pipeline.ledger = memory_ledger()
            elapsed_mem, failures_mem = run(
                pipeline, stage(pipeline, make_records(n, 1000)), workers=32, batch_size=100
            )
            results["throughput_pipeline_only"] = {
                "records": n,
                "provider_latency_ms": 10,
                "ledger": "in-memory store (no DynamoDB)",
                "sends_per_s": round(n / elapsed_mem),
                "failures": failures_mem,
            }
            lanes_rows(results, fast)
        finally:
            fast.close()
        # Last, when DynamoDB Local's JIT is as warm as it was for the rows above.
        per_reply = results["table_calls_per_reply"]
        results["dynamodb_local_ceiling"] = dynamodb_local_ceiling(
            table, endpoint, calls_per_reply=per_reply["writes"] + per_reply["reads"]
        )
    finally:
        dynamodb_local.stop()
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
