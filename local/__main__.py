"""`make dev`: start the Docker-free local stack and keep it running until Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time

from local.services import LocalStackError
from local.stack import AlreadyRunningError, LocalStack, Ports

_print_lock = threading.Lock()


def log(message: str) -> None:
    with _print_lock:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def main() -> int:
    try:
        ports = Ports.from_env()
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stack = LocalStack(
        ports,
        log=log,
        poll_interval_s=float(os.environ.get("LOCAL_POLL_INTERVAL", "0.25")),
        retry_delay_s=float(os.environ.get("LOCAL_RETRY_DELAY", "0.5")),
        callback_delay_s=float(os.environ.get("LOCAL_CALLBACK_DELAY", "0.3")),
    )
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
    except LocalStackError as exc:
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
