"""Run a function's handler in worker processes, as Lambda runs it in separate execution environments.

A worker is `python -m local.workers <spec> <fd>`: a fresh interpreter with the function's own environment
that imports the handler once, at start, on its main thread, then runs one event at a time. A FunctionPool
keeps up to `size` workers: concurrent invocations get different workers, so module state (the Powertools
resolver's current event, the logger's keys, caches) is isolated as in separate Lambda containers. When every
worker is busy and the pool is below its size, a new one starts (a cold start); one that dies is replaced.

Protocol: length-prefixed JSON frames, requests on the worker's stdin, answers on the pipe `<fd>`; stdout and
stderr stay the function's log, as in Lambda. A worker whose stdin closes (the stack stopped, or was killed)
finishes the invocation it is running and exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import IO, Any

from devkit.lambda_code import load_module
from devkit.lambda_context import ACCOUNT_ID, REGION, LambdaContext
from local.template import ROOT, FunctionSpec

Log = Callable[[str], None]
_HEADER = struct.Struct(">I")
READY_TIMEOUT_S = 120


class FunctionError(Exception):
    """The handler raised (or returned something that is not JSON): Lambda's function error."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class WorkerError(RuntimeError):
    """The worker could not import the function, or died during an invocation."""


def lambda_environment(spec: FunctionSpec, base: dict[str, str]) -> dict[str, str]:
    """`base` plus the variables Lambda's runtime sets for this function."""
    return {
        **base,
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "PYTHONUNBUFFERED": "1",
    }


# -- framing ----------------------------------------------------------------------------------------


def write_frame(stream: IO[bytes], message: Any) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next message, or None at end of stream."""
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    data = _read_exact(stream, _HEADER.unpack(header)[0])
    if data is None:
        return None
    return json.loads(data)


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        chunk = stream.read(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks


# -- the worker process -----------------------------------------------------------------------------


def load_handler(spec: FunctionSpec, instance: str = "") -> Callable[[dict[str, Any], Any], Any]:
    """Import the function's module (under its own name: `instance` gives another copy with its own globals)."""
    module = load_module(
        ROOT / spec.code_uri / spec.module_file, f"local_lambda_{spec.function_id}{'_' + instance if instance else ''}"
    )
    return getattr(module, spec.function_name)  # type: ignore[no-any-return]


def serve(spec: FunctionSpec, requests: IO[bytes], answers: IO[bytes]) -> int:
    # Ctrl-C reaches the whole process group: the stack decides when workers stop (by closing stdin).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started = time.monotonic()
    try:
        handler = load_handler(spec)
    except BaseException as exc:  # noqa: BLE001 - Lambda's Runtime.ImportModuleError: report and exit
        traceback.print_exc()
        write_frame(answers, {"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    write_frame(answers, {"ready": True, "pid": os.getpid(), "init_ms": round((time.monotonic() - started) * 1000)})
    while (request := read_frame(requests)) is not None:
        context = LambdaContext(spec.function_id, spec.timeout_s, spec.memory_mb, aws_request_id=request["request_id"])
        invoked = time.monotonic()
        try:
            answer: dict[str, Any] = {"ok": True, "result": handler(request["event"], context)}
        except Exception as exc:  # noqa: BLE001 - any exception is a function error, as in Lambda
            traceback.print_exc()
            answer = {"ok": False, "error_type": type(exc).__name__, "error_message": str(exc)}
        answer["duration_ms"] = round((time.monotonic() - invoked) * 1000, 1)
        try:
            write_frame(answers, answer)
        except (TypeError, ValueError) as exc:
            write_frame(answers, {"ok": False, "error_type": "Runtime.MarshalError", "error_message": str(exc)})
        except BrokenPipeError:  # the stack is gone; the invocation finished all the same
            return 0
    return 0


def main(argv: list[str]) -> int:
    spec = FunctionSpec(**json.loads(argv[0]))
    answers = os.fdopen(int(argv[1]), "wb")
    try:
        return serve(spec, sys.stdin.buffer, answers)
    finally:
        with contextlib.suppress(OSError):  # the stack may be gone (a kill): nothing to tell it any more
            answers.close()


# -- the stack's side -------------------------------------------------------------------------------


class Worker:
    """One worker process (one warm execution environment)."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str]) -> None:
        read_end, write_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local.workers", json.dumps(asdict(spec)), str(write_end)],
                stdin=subprocess.PIPE,
                pass_fds=(write_end,),
                env=env,
                cwd=ROOT,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self.answers = os.fdopen(read_end, "rb")
        self.spec = spec
        self.init_ms = 0
        self.last_duration_ms = 0.0  # the handler's own time in the last invocation

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> None:
        ready = read_frame(self.answers)
        if not ready or not ready.get("ready"):
            error = (ready or {}).get("error") or f"exited with code {self.process.wait(10)}"
            self.stop()
            raise WorkerError(f"{self.spec.function_id} failed to initialise: {error}")
        self.init_ms = int(ready.get("init_ms", 0))

    def invoke(self, event: dict[str, Any], request_id: str) -> Any:
        assert self.process.stdin is not None
        try:
            write_frame(self.process.stdin, {"event": event, "request_id": request_id})
            answer = read_frame(self.answers)
        except (BrokenPipeError, ConnectionResetError, OSError):
            answer = None
        if answer is None:
            code = self.process.poll()
            raise WorkerError(
                f"{self.spec.function_id} worker {self.pid} died during the invocation (exit code {code})"
            )
        self.last_duration_ms = float(answer.get("duration_ms", 0))
        if not answer["ok"]:
            raise FunctionError(answer["error_type"], answer["error_message"])
        return answer["result"]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Close its stdin: it finishes the running invocation, if any, and exits."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()

    def stop(self, timeout: float = 30) -> None:
        """Close its stdin and wait for it to exit; kill it if it does not."""
        self.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.answers.close()


class FunctionPool:
    """Up to `size` workers of one function; `invoke` is thread-safe and blocks while all are busy."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        *,
        size: int = 1,
        log: Log = print,
        on_spawn: Callable[[Worker], None] | None = None,
    ) -> None:
        self.spec = spec
        self.env = lambda_environment(spec, env)
        self.size = max(1, size)
        self.log = log
        self.on_spawn = on_spawn
        self.arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.function_id}"
        self.state = "stopped"
        self.error: str | None = None
        self.cold_starts = 0
        self.invocations = 0
        self._idle: list[Worker] = []
        self._workers: list[Worker] = []
        self._starting = 0
        self._tickets = self._serving = 0  # requests for a worker are served in arrival order
        self._first: Worker | None = None
        self._cond = threading.Condition()

    @property
    def available(self) -> bool:
        return (ROOT / self.spec.code_uri / self.spec.module_file).exists()

    def start(self) -> None:
        """Start the first worker (it imports the function); `wait_ready` waits for it."""
        self.state = "starting"
        self._first = Worker(self.spec, self.env)
        if self.on_spawn:
            self.on_spawn(self._first)

    def wait_ready(self) -> None:
        worker, self._first = self._first, None
        if worker is None:
            raise WorkerError(f"{self.spec.function_id}: start() first")
        try:
            worker.wait_ready()
        except WorkerError as exc:
            self.state, self.error = "failed", str(exc)
            raise
        with self._cond:
            self._workers.append(worker)
            self._idle.append(worker)
            self.cold_starts += 1
        self.state = "ready"
        self.log(
            f"[lambda] {self.spec.function_id} imported in worker {worker.pid} ({worker.init_ms} ms); "
            f"up to {self.size} concurrent"
        )

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.invoke_timed(event)[0]

    def invoke_timed(self, event: dict[str, Any]) -> tuple[Any, float, float]:
        """(result, ms waiting for a worker (incl. a cold start), ms in the handler)."""
        started = time.monotonic()
        worker = self._acquire()
        acquired = time.monotonic()
        try:
            result = worker.invoke(event, str(uuid.uuid4()))
        except WorkerError:
            self._discard(worker)
            raise
        except BaseException:
            self._release(worker)
            raise
        else:
            self._release(worker)
        finally:
            elapsed = time.monotonic() - acquired
            if elapsed > self.spec.timeout_s:
                self.log(
                    f"[lambda] {self.spec.function_id} ran {elapsed:.1f}s, over its {self.spec.timeout_s}s "
                    "Timeout (Lambda would have stopped it)"
                )
        return result, (acquired - started) * 1000, worker.last_duration_ms

    def _acquire(self) -> Worker:
        """An idle worker, or a new one while below `size`; first come, first served (no request starves)."""
        with self._cond:
            ticket, self._tickets = self._tickets, self._tickets + 1
            try:
                while True:
                    if self.state in ("stopped", "failed"):
                        raise WorkerError(f"{self.spec.function_id} is {self.state}")
                    if ticket == self._serving:
                        if self._idle:
                            self._serving += 1
                            self.invocations += 1
                            return self._idle.pop()
                        if len(self._workers) + self._starting < self.size:
                            self._serving += 1
                            self._starting += 1
                            break
                    self._cond.wait()
            finally:
                self._cond.notify_all()
        try:
            worker = Worker(self.spec, self.env)
            if self.on_spawn:
                self.on_spawn(worker)
            worker.wait_ready()
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
        self.log(f"[lambda] {self.spec.function_id} cold start: worker {worker.pid} ({worker.init_ms} ms)")
        with self._cond:
            self._workers.append(worker)
            self.cold_starts += 1
            self.invocations += 1
        return worker

    def _release(self, worker: Worker) -> None:
        with self._cond:
            if self.state == "stopped":
                self._workers.remove(worker)
            else:
                self._idle.append(worker)
            self._cond.notify_all()
        if self.state == "stopped":
            worker.stop()

    def _discard(self, worker: Worker) -> None:
        worker.stop(timeout=1)
        with self._cond:
            self._workers.remove(worker)
            self._cond.notify_all()
        self.log(f"[lambda] {self.spec.function_id} worker {worker.pid} is gone; the next invocation starts a new one")

    def pids(self) -> list[int]:
        with self._cond:
            return [w.pid for w in self._workers]

    def describe(self) -> dict[str, Any]:
        with self._cond:
            return {
                "state": self.state,
                "error": self.error,
                "workers": len(self._workers),
                "busy": len(self._workers) - len(self._idle),
                "limit": self.size,
                "cold_starts": self.cold_starts,
                "invocations": self.invocations,
            }

    def stop(self) -> None:
        """Stop idle workers now; busy ones stop when their invocation returns."""
        with self._cond:
            self.state = "stopped"
            idle, self._idle = self._idle, []
            for worker in idle:
                self._workers.remove(worker)
            self._cond.notify_all()
        first, self._first = self._first, None
        stopping = [*idle, *([first] if first else [])]
        for worker in stopping:  # all at once: each interpreter takes a moment to exit
            worker.close()
        for worker in stopping:
            worker.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


class InProcessFunction:
    """A FunctionPool's interface over one copy of the handler in this process, calls one at a time.

    For instrumentation only (bench.cost wraps botocore and the handler in-process): no isolation between
    invocations, and the functions read this process's environment, which the caller sets.
    """

    def __init__(self, spec: FunctionSpec, log: Log = print) -> None:
        self.spec = spec
        self.log = log
        self.arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.function_id}"
        self.state = "stopped"
        self.error: str | None = None
        self.invocations = 0
        self._handler: Callable[[dict[str, Any], Any], Any] | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return (ROOT / self.spec.code_uri / self.spec.module_file).exists()

    def start(self) -> None:
        self.state = "starting"

    def wait_ready(self) -> None:
        try:
            self._handler = load_handler(self.spec)
        except Exception as exc:
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            raise WorkerError(self.error) from exc
        self.state = "ready"

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.invoke_timed(event)[0]

    def invoke_timed(self, event: dict[str, Any]) -> tuple[Any, float, float]:
        started = time.monotonic()
        with self._lock:
            if self._handler is None:
                raise WorkerError(f"{self.spec.function_id} is {self.state}")
            acquired = time.monotonic()
            self.invocations += 1
            context = LambdaContext(self.spec.function_id, self.spec.timeout_s, self.spec.memory_mb)
            try:
                result = self._handler(event, context)
            except Exception as exc:
                raise FunctionError(type(exc).__name__, str(exc)) from exc
            finally:
                duration_ms = (time.monotonic() - acquired) * 1000
        return result, (acquired - started) * 1000, duration_ms

    def pids(self) -> list[int]:
        return []

    def describe(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "error": self.error,
            "workers": 1,
            "busy": int(self._lock.locked()),
            "limit": 1,
            "cold_starts": int(self._handler is not None),
            "invocations": self.invocations,
        }

    def stop(self) -> None:
        self.state = "stopped"


# What the stack runs a function with: worker processes (isolated, as Lambda), or in-process (instrumented).
Function = FunctionPool | InProcessFunction
