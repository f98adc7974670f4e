"""On start the stack ends its own leftovers (recorded in its state file) and nothing else (local/stack/recovery.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.services import LocalStackError, free_port, process_command
from local.stack import recovery
from local.stack.lifecycle import LocalStack
from local.stack.recovery import AlreadyRunningError
from local.stack.settings import Ports


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    monkeypatch.setenv("LOCAL_STATE_DIR", str(tmp_path))
    ports = Ports(api=free_port(), dynamodb=free_port(), moto=free_port(), sandbox=free_port())
    lines: list[str] = []
    stack = LocalStack(ports, log=lines.append)
    stack.lines = lines  # type: ignore[attr-defined]
    return stack


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def sleeper(started: list[subprocess.Popen[bytes]], *, session: bool) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=session)
    started.append(process)
    return process


def command_of(process: subprocess.Popen[bytes]) -> str:
    return " ".join(str(a) for a in process.args)  # type: ignore[union-attr]


def save_state(stack: LocalStack, pid: int, processes: list[dict]) -> None:
    stack.state_file.parent.mkdir(parents=True, exist_ok=True)
    stack.state_file.write_text(json.dumps({"pid": pid, "command": "python -m local (gone)", "processes": processes}))


def test_leftovers_of_a_killed_stack_are_ended_and_reported(stack: LocalStack, sleepers: list) -> None:
    # Given the state file of a stack that was killed, naming a service it started and one of its workers
    service, worker = sleeper(sleepers, session=True), sleeper(sleepers, session=False)
    save_state(
        stack,
        999_999,
        [
            {"name": "DynamoDB Local", "pid": service.pid, "command": command_of(service), "group": True},
            {
                "name": "WebhookFunction worker",
                "pid": worker.pid,
                "command": command_of(worker),
                "group": False,
                "worker": True,
            },
        ],
    )
    # When a new stack recovers (a worker gets a moment to finish its invocation; this one never will)
    original, recovery.WORKER_DRAIN_S = recovery.WORKER_DRAIN_S, 0.5
    try:
        stack.recover()
    finally:
        recovery.WORKER_DRAIN_S = original
    # Then both are ended, and it says so
    assert service.wait(5) is not None and worker.wait(5) is not None
    said = "\n".join(stack.lines)  # type: ignore[attr-defined]
    assert f"ending DynamoDB Local (pid {service.pid}) left running by the previous stack (pid 999999)" in said
    assert f"waiting for WebhookFunction worker (pid {worker.pid})" in said
    assert not stack.state_file.exists()


def test_a_recorded_pid_that_now_runs_something_else_is_left_alone(stack: LocalStack, sleepers: list) -> None:
    other = sleeper(sleepers, session=True)
    save_state(
        stack,
        999_999,
        [{"name": "moto server", "pid": other.pid, "command": "python -m moto.server -p 1", "group": True}],
    )
    stack.recover()
    assert other.poll() is None and process_command(other.pid) == command_of(other)
    assert f"pid {other.pid} (moto server of the previous run) now runs something else; left alone" in stack.lines  # type: ignore[attr-defined]


def test_a_running_stack_is_not_a_leftover(stack: LocalStack) -> None:
    # Given a state file whose stack process is alive and runs the recorded command (here: this test run)
    save_state(stack, os.getppid() if os.getppid() > 1 else os.getpid(), [])
    state = json.loads(stack.state_file.read_text())
    state["pid"], state["command"] = os.getppid(), process_command(os.getppid())
    stack.state_file.write_text(json.dumps(state))
    with pytest.raises(AlreadyRunningError, match="already running"):
        stack.recover()


def test_a_port_held_by_another_program_is_named_with_its_owner(stack: LocalStack) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", stack.ports.moto))
        holder.listen()
        with pytest.raises(AlreadyRunningError) as raised:
            stack.recover()
    message = str(raised.value)
    assert f"MOTO_PORT={stack.ports.moto} is held by pid {os.getpid()}" in message
    assert "not a leftover of this stack" in message


def test_stop_running_terminates_the_recorded_stack_and_waits_for_it(stack: LocalStack, sleepers: list) -> None:
    # Given a record whose stack process runs its recorded command (a sleeper that SIGTERM ends)
    running = sleeper(sleepers, session=False)
    save_state(stack, running.pid, [])
    state = json.loads(stack.state_file.read_text())
    state["command"] = command_of(running)
    stack.state_file.write_text(json.dumps(state))
    # When `make stop` runs for its port / Then it is gone, and the message names it
    said = recovery.stop_running(stack.ports.api, timeout=10)
    assert running.poll() is not None or running.wait(5) is not None
    assert said == f"stopped the local stack on port {stack.ports.api} (pid {running.pid})"


def test_stop_running_refuses_without_a_running_stack(stack: LocalStack, sleepers: list) -> None:
    # Given no record / Then nothing is signalled
    with pytest.raises(LocalStackError, match="no local stack is running"):
        recovery.stop_running(stack.ports.api)
    # Given a record whose pid now runs something else / Then it is left alone
    other = sleeper(sleepers, session=False)
    save_state(stack, other.pid, [])
    with pytest.raises(LocalStackError, match="no local stack is running"):
        recovery.stop_running(stack.ports.api)
    assert other.poll() is None
