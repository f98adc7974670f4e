"""`python -m local` as a child process on free ports: how tests and benchmarks start, kill and stop the stack."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devkit.http_client import http
from local.services import end_process, free_port, process_command
from local.template import ROOT

PORT_NAMES = ("PORT", "DYNAMODB_PORT", "MOTO_PORT", "SANDBOX_PORT")


def get_json(url: str, timeout: float = 5) -> tuple[int, Any]:
    """(status, JSON body) of a GET; status 0 when nothing answered."""
    try:
        return http("GET", url, timeout=timeout)
    except OSError:
        return 0, None


class StackProcess:
    """One local stack in its own process, with its state (data, checkpoints, log) under `state_dir`."""

    def __init__(self, state_dir: Path, env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.log_path = state_dir / "stack.log"
        ports = {name: str(free_port()) for name in PORT_NAMES}
        self.env = {**os.environ, **ports, "LOCAL_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    @property
    def info_file(self) -> Path:
        return self.state_dir / f"stack-{self.env['PORT']}.json"

    def info(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads(self.info_file.read_text()))
        return {}

    def start(self, *args: str) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local", *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 120) -> dict[str, Any]:
        """Wait until /_local/health answers 200; the stack's info. RuntimeError (with the log) if it exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"the local stack exited:\n{self.log()[-4000:]}")
            if get_json(f"{self.api}/_local/health", timeout=2)[0] == 200:
                return self.info()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local stack was not ready within {timeout:.0f}s:\n{self.log()[-4000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def kill(self) -> None:
        """SIGKILL the stack's own process only, as a crash would: what it started is left behind."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 60) -> int | None:
        """Ctrl-C and wait; then end anything it recorded that still runs. Returns its exit code."""
        code = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
            code = self.process.returncode
        for entry in self.info().get("processes", []):  # only if the stack could not clean up after itself
            if process_command(int(entry["pid"])) == entry["command"]:
                end_process(int(entry["pid"]), group=bool(entry.get("group")), timeout=5)
        return code
