"""The local stack survives what a laptop does to it: a hard kill under load, and being started again and again.

These tests start their own stacks (`python -m local` through local.launcher.StackProcess), not the session one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devkit import payloads
from local.launcher import StackProcess, get_json
from local.services import free_port
from messenger.reply.ledger import TERMINAL
from tests.e2e.conftest import DEPLOYED, FAST, LocalStack, meta_body, meta_message, new_user, wait_until
from tests.helpers import META, ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        bool(DEPLOYED), reason=f"starts its own local stacks; AWS_SAM_STACK_NAME={DEPLOYED} targets a deployed one"
    ),
]
MESSAGES = 300


def post(api: str, payload: dict[str, Any], timeout: float = 15) -> int:
    """Deliver a signed Meta POST as Meta would; the status, or 0 when nothing answered (refused, reset)."""
    body, signature = payloads.signed_meta(payload, META)
    request = urllib.request.Request(
        f"{api}/meta/webhook", data=body, method="POST", headers={"content-type": "application/json", **signature}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def sandbox_process(port: int, webhook: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.sandbox",
                "serve",
                "--port",
                str(port),
                "--webhook",
                webhook,
                "--callback-delay",
                "0.05",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_until(lambda: get_json(f"http://127.0.0.1:{port}/_sandbox/health")[0] == 200, timeout=30)
    return process


def test_a_sigkill_under_load_then_a_restart_answers_every_accepted_message_once_or_gives_it_up(tmp_path: Path) -> None:
    # Given a stack whose providers live in their own process (Meta's servers do not crash with our stack)
    sandbox_url = f"http://127.0.0.1:{free_port()}"
    stack = StackProcess(tmp_path / "state", {**FAST, "LOCAL_SANDBOX_URL": sandbox_url})
    sandbox = sandbox_process(int(sandbox_url.rsplit(":", 1)[1]), stack.api, tmp_path / "sandbox.log")
    # Without the echo, delivery and read callbacks (tested elsewhere), a quarter of the requests: a quick test
    assert (
        json.loads(
            urllib.request.urlopen(
                urllib.request.Request(  # noqa: S310 - loopback
                    f"{sandbox_url}/_sandbox/config", data=b'{"callbacks": false}', method="POST"
                )
            ).read()
        )["callbacks"]
        is False
    )
    try:
        stack.start()
        stack.wait_ready()
        payloads = {user: meta_body(meta_message(user, "hello")) for user in (new_user() for _ in range(MESSAGES))}
        accepted: set[str] = set()
        lock = threading.Lock()

        def deliver(user: str) -> None:
            if post(stack.api, payloads[user]) == 200:
                with lock:
                    accepted.add(user)
                    crash = len(accepted) == MESSAGES // 3
                if crash:  # When the stack is killed (SIGKILL) in the middle of the load
                    stack.kill()

        with ThreadPoolExecutor(8) as senders:
            list(senders.map(deliver, payloads))
        assert stack.process is not None and stack.process.returncode == -9
        accepted_before_crash = set(accepted)
        assert MESSAGES // 3 <= len(accepted_before_crash) < MESSAGES

        # And it is started again on the same ports and state
        stack.start()
        info = stack.wait_ready()
        log = stack.log()
        assert "left running by the previous stack" in log and "ending DynamoDB Local" in log
        assert "kept table messenger-events from the last run" in log
        # And Meta redelivers what was not accepted (a refused or reset POST)
        for user in payloads.keys() - accepted_before_crash:
            assert wait_until(lambda user=user: post(stack.api, payloads[user]) == 200, timeout=30)

        # Then every message is answered exactly once, or visibly given up: a send cut off by the kill may or
        # may not have left, so without a confirming echo (the callbacks are off here) its claim ends
        # `ambiguous` (alarmed) after the confirmation window, and it is never sent again
        def answered() -> Counter[str]:
            _, sends = get_json(f"{sandbox_url}/_sandbox/requests?provider=meta", timeout=30)
            return Counter(s["recipient"] for s in sends if 200 <= s["status"] < 300)

        view = LocalStack(api=stack.api, sandbox=sandbox_url, dynamodb_url=info["dynamodb"], table=info["table"])

        def claim_states() -> dict[str, str]:
            claims = [i for i in view.items() if i["sk"].startswith("REPLY#")]
            return {c["pk"].rsplit("#", 1)[-1]: c["state"] for c in claims}

        def done() -> bool:
            counts, states = answered(), claim_states()
            return all(counts[user] >= 1 or states.get(user) in TERMINAL for user in payloads)

        wait_until(done, timeout=240, interval=1)
        view.settled()
        counts, states = answered(), claim_states()
        assert {user: counts[user] for user in payloads if counts[user] > 1} == {}
        given_up = {user: states.get(user) for user in payloads if counts[user] == 0}
        assert set(given_up.values()) <= {"ambiguous"}, given_up
        assert {states.get(user) for user in payloads if counts[user] == 1} <= {"sent", "ambiguous"}
    finally:
        stack.stop()
        sandbox.terminate()
        sandbox.wait(10)


def test_ten_starts_with_a_client_hammering_health_and_the_webhook(tmp_path: Path, dynamodb_endpoint: str) -> None:
    # Given one DynamoDB Local for every start (it is not what this test is about, and Java starts slowly)
    stack = StackProcess(tmp_path / "state", {**FAST, "LOCAL_DYNAMODB_URL": dynamodb_endpoint})
    health: Counter[int] = Counter()
    posts: Counter[int] = Counter()
    for _ in range(10):
        # When a client hammers the health URL and posts signed messages from before the stack listens
        user, stop = new_user(), threading.Event()
        ready_posts: list[int] = []

        def hammer(user: str = user, stop: threading.Event = stop, ready_posts: list[int] = ready_posts) -> None:
            while not stop.is_set():
                status = get_json(f"{stack.api}/_local/health", timeout=10)[0]
                health[status] += 1
                answer = post(stack.api, meta_body(meta_message(user, "hi")), timeout=90)
                posts[answer] += 1
                if status == 200:
                    ready_posts.append(answer)
                time.sleep(0.02)

        client = threading.Thread(target=hammer)
        client.start()
        try:
            stack.start()
            stack.wait_ready()
            wait_until(lambda ready_posts=ready_posts: len(ready_posts) >= 3, timeout=60)
        finally:
            stop.set()
            client.join(120)
            code = stack.stop()
        # Then it started, served and stopped cleanly every time
        assert code == 0, stack.log()[-3000:]
    log = stack.log()
    assert "Traceback" not in log and "Internal Server Error" not in log
    assert set(health) <= {0, 200, 503}, health
    assert set(posts) <= {0, 200}, posts
    assert posts[200] >= 30
