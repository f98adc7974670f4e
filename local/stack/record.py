"""`.local/stack-<PORT>.json`, the running stack's record: its URLs, its own pid and command line, and every
process it started (pid and command line). `make chat` and `make connect LOCAL=1` find the stack through it; the
next start reads it to end what a killed stack left running (local/stack/recovery.py)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from typing import Any

from devkit.stack_info import stack_info_file
from local.services import process_command


class StackRecord:
    def __init__(self, api_port: int, describe: Callable[[], dict[str, Any]]) -> None:
        """`describe()` is what the record says about the stack besides its processes (URLs, ready, ...)."""
        self.path = stack_info_file(api_port)
        self._describe = describe
        self._processes: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text())
            if isinstance(data, dict):
                return data
        return {}

    def track(self, name: str, pid: int, args: Any, *, group: bool, worker: bool = False) -> None:
        """Record a process this stack started (`group`: it leads its own process group)."""
        command = " ".join(str(a) for a in args)
        with self._lock:
            self._processes = [e for e in self._processes if process_command(int(e["pid"])) is not None]
            self._processes.append({"name": name, "pid": pid, "command": command, "group": group, "worker": worker})
        self.write()

    def write(self) -> None:
        with self._lock:
            data = {**self._describe(), "command": process_command(os.getpid()), "processes": self._processes}
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(self.path)

    def remove(self) -> None:
        """Delete the record if it is this process's (a stopped stack leaves nothing to recover)."""
        with contextlib.suppress(OSError):
            if int(self.read().get("pid", 0)) == os.getpid():
                self.path.unlink()
