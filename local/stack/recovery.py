"""A stack that was killed (SIGKILL, a crash) leaves DynamoDB Local, moto and workers running: the next start on
the same ports ends exactly the processes its record names, and nothing else. A port held by anything else is
named with its owner. `stop_running` stops a running stack (one started in the background) as Ctrl-C would."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

from devkit.stack_info import stack_info_file
from local.services import LocalStackError, end_process, port_in_use, port_owner, process_command
from local.stack.record import StackRecord
from local.stack.settings import Log

WORKER_DRAIN_S = 30.0
PORT_RELEASE_S = 10.0


class AlreadyRunningError(LocalStackError):
    pass


def recover(record: StackRecord, own_ports: dict[str, int], log: Log) -> None:
    """End what a killed stack on these ports left running (only processes it recorded), then check the ports."""
    saved = record.read()
    if saved:
        pid = int(saved.get("pid", 0))
        if pid != os.getpid() and saved.get("command") and process_command(pid) == saved["command"]:
            raise AlreadyRunningError(
                f"the local stack is already running (pid {pid}, {record.path}); stop it with Ctrl-C in its "
                "terminal (or `make stop`), or use other ports (PORT, DYNAMODB_PORT, MOTO_PORT, SANDBOX_PORT)"
            )
        end_leftovers(saved, log)
        with contextlib.suppress(OSError):
            record.path.unlink()
    ended = time.monotonic() + (PORT_RELEASE_S if saved else 0)
    while any(port_in_use(port) for port in own_ports.values()) and time.monotonic() < ended:
        time.sleep(0.2)  # a process that was just ended may hold its port for a moment
    busy = [f"{name}={port} is held by {port_owner(port)}" for name, port in own_ports.items() if port_in_use(port)]
    if busy:
        raise AlreadyRunningError(
            f"port in use: {'; '.join(busy)}. That is not a leftover of this stack (none is recorded in "
            f"{record.path}): stop it, or choose other ports via PORT, DYNAMODB_PORT, MOTO_PORT, SANDBOX_PORT."
        )


def end_leftovers(saved: dict[str, Any], log: Log) -> None:
    # Workers first: one may still be finishing an invocation (and writing to DynamoDB Local).
    for entry in sorted(saved.get("processes", []), key=lambda e: not e.get("worker")):
        pid, name, command = int(entry["pid"]), str(entry["name"]), str(entry["command"])
        now = process_command(pid)
        if now is None:
            continue
        if now != command:
            log(f"pid {pid} ({name} of the previous run) now runs something else; left alone")
            continue
        if entry.get("worker"):
            log(f"waiting for {name} (pid {pid}) of the previous run to finish its invocation")
            deadline = time.monotonic() + WORKER_DRAIN_S
            while process_command(pid) == command and time.monotonic() < deadline:
                time.sleep(0.1)
            if process_command(pid) == command:
                end_process(pid, group=False)
            continue
        log(
            f"ending {name} (pid {pid}) left running by the previous stack (pid {saved.get('pid')}), "
            "which did not stop cleanly"
        )
        end_process(pid, group=bool(entry.get("group")))


def stop_running(api_port: int, timeout: float = 60.0) -> str:
    """SIGTERM the stack recorded for `api_port` (it stops as on Ctrl-C) and wait until it is gone; what happened.

    LocalStackError if there is no running stack on that port, or it did not stop within `timeout`.
    """
    record = StackRecord(api_port, dict)
    saved = record.read()
    pid = int(saved.get("pid", 0))
    if not pid or not saved.get("command") or process_command(pid) != saved["command"]:
        raise LocalStackError(f"no local stack is running on port {api_port} ({stack_info_file(api_port)})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_command(pid) == saved["command"]:
        if time.monotonic() > deadline:
            raise LocalStackError(f"the local stack (pid {pid}) did not stop within {timeout:.0f}s")
        time.sleep(0.1)
    return f"stopped the local stack on port {api_port} (pid {pid})"
