"""The local webhook's latency with one sender and with N concurrent senders, over the local stack's HTTP API.

    python -m bench.concurrency [--senders 20] [--messages 400] [--single 100] [--warmup 40] [--interval 2]

Starts `python -m local` on free ports (state in a temporary directory) and sends signed Meta text messages
from senders that each send their next message `--interval` seconds after the previous one was answered: a
person in a chat, who reads the bot's answer before typing again (2 s by default, both phases). Every message
takes the real path: stored by the webhook, answered by the reply function through the sandbox, then its echo,
delivery and read callbacks come back to the webhook, so each message is four webhook requests and a reply.
Reports p50/p95 per phase and the p95 ratio (goal: <= 3). A benchmark, not a test: the goal is reported as
PASS/MISS.

`--interval 0` is a closed loop that measures the stack saturated: then the senders' latency is their number
divided by what the machine can do, whatever the concurrency (on 2 cores about 75-90 ms of CPU per message,
DynamoDB Local the largest share), and the ratio says more about the machine than about the stack.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from bench.common import percentile
from devkit import payloads
from devkit.sandbox_secrets import sandbox_secrets
from local.launcher import StackProcess

SECRETS = sandbox_secrets()
PAGE_ID = next(iter(SECRETS["meta"]["page_tokens"]))


def post_message(api: str, user: str) -> tuple[int, float]:
    """One signed inbound text message; (status, seconds)."""
    now = payloads.now_ms()
    message = payloads.meta_message(
        user, PAGE_ID, now, message={"mid": f"m_bench_{uuid.uuid4().hex}", "text": "What are your opening hours?"}
    )
    body, signature = payloads.signed_meta(payloads.meta_page(message, page_id=PAGE_ID, time_ms=now), SECRETS["meta"])
    request = urllib.request.Request(
        f"{api}/meta/webhook", data=body, method="POST", headers={"content-type": "application/json", **signature}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback URL
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0
    return status, time.perf_counter() - started


def run_senders(api: str, senders: int, messages: int, interval: float = 0) -> tuple[list[float], list[int]]:
    """`messages` in all from `senders` threads; (latencies of 200s, other statuses)."""
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    per_sender = [messages // senders + (1 if i < messages % senders else 0) for i in range(senders)]

    def sender(count: int) -> None:
        user = "8" + str(uuid.uuid4().int)[:15]
        time.sleep(random.uniform(0, interval))  # senders do not start in lockstep
        for _ in range(count):
            status, seconds = post_message(api, user)
            with lock:
                (latencies.append(seconds) if status == 200 else failures.append(status))
            time.sleep(interval)

    threads = [threading.Thread(target=sender, args=(count,)) for count in per_sender]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures


def settle(api: str, timeout: float = 120) -> None:
    """Wait until the reply side has caught up, so one phase's replies and callbacks do not load the next."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        with urllib.request.urlopen(f"{api}/_local/poller", timeout=10) as response:  # noqa: S310 - loopback
            state = json.loads(response.read())
        quiet = quiet + 1 if state.get("idle") else 0
        time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.concurrency", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--messages", type=int, default=400, help="messages in the concurrent phase")
    parser.add_argument("--single", type=int, default=100, help="messages in the single-sender phase")
    parser.add_argument("--warmup", type=int, default=40, help="concurrent warm-up messages (start the workers)")
    parser.add_argument("--log", type=Path, help="keep the stack's log here (per-request times: handler, queueing)")
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        help="seconds a sender waits after an answer before its next message (default: 2; 0 = closed loop)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-local-") as state:
        stack = StackProcess(Path(state))  # the settings `make dev` runs with (callbacks 0.3 s apart)
        print("starting the local stack ...", flush=True)
        stack.start()
        try:
            stack.wait_ready()
            run_senders(stack.api, args.senders, args.warmup)
            settle(stack.api)
            single, single_failed = run_senders(stack.api, 1, args.single, args.interval)
            settle(stack.api)
            many, many_failed = run_senders(stack.api, args.senders, args.messages, args.interval)
            settle(stack.api)
        finally:
            stack.stop()
            if args.log:
                args.log.write_text(stack.log())
    rows = [("1 sender", single, single_failed), (f"{args.senders} senders", many, many_failed)]
    print(f"\n{'phase':<12} {'answered':>8} {'not 200':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for name, latencies, failed in rows:
        print(
            f"{name:<12} {len(latencies):>8} {len(failed):>8} {percentile(latencies, 0.5) * 1000:>8.1f} "
            f"{percentile(latencies, 0.95) * 1000:>8.1f}"
        )
    ratio = percentile(many, 0.95) / percentile(single, 0.95)
    verdict = "PASS" if ratio <= 3 and not single_failed and not many_failed else "MISS"
    print(
        f"\np95 with {args.senders} senders / p95 with 1 sender = {ratio:.2f} (goal <= 3) {verdict}; "
        f"interval {args.interval:g}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
