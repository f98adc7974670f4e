"""`make dev`: start the Docker-free local stack and keep it running until Ctrl-C (SIGINT) or SIGTERM.

    python -m local [--reset]
    python -m local --stop        # `make stop`: stop the stack running on PORT (e.g. one started in the background)

`--reset` (`make dev RESET=1`) deletes the data kept from the last run first. Settings come from the
environment: PORT, DYNAMODB_PORT, MOTO_PORT, SANDBOX_PORT, LOCAL_CONCURRENCY, LOCAL_REPLY_CONCURRENCY,
LOCAL_POLL_INTERVAL, LOCAL_RETRY_DELAY, LOCAL_CALLBACK_DELAY, LOCAL_CALLBACK_TIME_SCALE, LOCAL_DYNAMODB_URL,
LOCAL_DYNAMODB_FSYNC, LOCAL_SANDBOX_URL, LOCAL_STREAM_SPLIT, LOCAL_STREAM_ORDER (docs/local-stack.md).
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import threading
import time

from local.poller import ORDERS
from local.services import LocalStackError
from local.stack.lifecycle import LocalStack
from local.stack.recovery import AlreadyRunningError, stop_running
from local.stack.settings import Options, Ports
from local.workers import WorkerError

_print_lock = threading.Lock()


def log(message: str) -> None:
    with _print_lock:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def options_from_env(reset: bool, env: dict[str, str] | None = None) -> Options:
    env = dict(os.environ if env is None else env)

    def number(name: str, default: float, kind: type = float) -> float:
        raw = env.get(name) or str(default)
        try:
            value = kind(raw)
        except ValueError:
            raise LocalStackError(f"{name} must be a number, got {raw!r}") from None
        if value < 0:
            raise LocalStackError(f"{name} must not be negative, got {raw!r}")
        return value

    order = env.get("LOCAL_STREAM_ORDER") or "stream"
    if order not in ORDERS:
        raise LocalStackError(f"LOCAL_STREAM_ORDER must be one of {', '.join(ORDERS)}, got {order!r}")
    return Options(
        poll_interval_s=number("LOCAL_POLL_INTERVAL", 0.25),
        retry_delay_s=number("LOCAL_RETRY_DELAY", 0.5),
        callback_delay_s=number("LOCAL_CALLBACK_DELAY", 0.3),
        callback_time_scale=max(1.0, number("LOCAL_CALLBACK_TIME_SCALE", 60.0)),
        concurrency=max(1, int(number("LOCAL_CONCURRENCY", 4, int))),
        reply_concurrency=int(number("LOCAL_REPLY_CONCURRENCY", 0, int)),
        stream_split=max(1, int(number("LOCAL_STREAM_SPLIT", 1, int))),
        stream_order=order,
        reset=reset,
        dynamodb_url=env.get("LOCAL_DYNAMODB_URL", ""),
        sandbox_url=env.get("LOCAL_SANDBOX_URL", ""),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reset", action="store_true", help="delete the data kept from the last run first")
    parser.add_argument("--stop", action="store_true", help="stop the stack running on PORT (SIGTERM) and wait")
    args = parser.parse_args(argv)
    try:
        ports = Ports.from_env()
        options = options_from_env(args.reset)
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.stop:
        try:
            log(stop_running(ports.api))
        except LocalStackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    stack = LocalStack(ports, log=log, options=options)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C while stopping: leave at once (services still get killed by atexit)
            raise SystemExit(130)
        log(f"{signal.Signals(signum).name} received, stopping")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(stack.stop)  # Java and moto never outlive us, whatever path we exit by
    try:
        stack.start()
    except AlreadyRunningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (LocalStackError, WorkerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log(stack.banner())
    log(f"ready: {stack.api_url}")
    while not stop.wait(0.5):
        pass
    stack.stop()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
