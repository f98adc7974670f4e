"""The local stack end to end, over HTTP only, as Meta and Vonage would drive it.

Each test uses its own user (PSID), so the recorded sends and stored items of one test never mix with another's.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from messenger.handover import answered_event_id
from messenger.reply.ledger import MAX_ATTEMPTS
from messenger.sending import RetryPolicy
from tests.e2e.conftest import (
    LocalStack,
    http,
    meta_body,
    meta_message,
    new_user,
    vonage_inbound,
    wait_until,
)
from tests.helpers import META, PAGE_ID, ROOT
from tools.smoke import Deployment

pytestmark = pytest.mark.e2e


def reply_claims(stack: LocalStack, user: str) -> list[dict]:
    return [i for i in stack.items(user) if i["sk"].startswith("REPLY#")]


def test_unknown_routes_are_api_gateway_404s(deployment: Deployment) -> None:
    api = deployment.outputs["HttpApiUrl"]
    status, body = http("GET", f"{api}/nope")
    assert (status, body) == (404, {"message": "Not Found"})
    assert http("DELETE", deployment.meta_webhook_url)[0] == 404


def test_meta_verify_handshake(deployment: Deployment) -> None:
    query = urlencode(
        {"hub.mode": "subscribe", "hub.verify_token": deployment.meta["verify_token"], "hub.challenge": "1158201444"}
    )
    assert http("GET", f"{deployment.meta_webhook_url}?{query}") == (200, 1158201444)
    assert http("GET", f"{deployment.meta_webhook_url}?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1")[0] == 403


def test_meta_message_is_answered_once_and_its_status_reaches_read(stack: LocalStack) -> None:
    # Given a user's message, signed as Meta signs it
    user = new_user()
    status, _ = stack.meta_post(meta_body(meta_message(user, "hello")))
    assert status == 200
    # Then the bot answers through the Graph sandbox with the Page's token
    sends = wait_until(lambda: stack.sends(user, ok_only=True))
    assert sends[0]["path"] == f"/v25.0/{PAGE_ID}/messages"
    assert sends[0]["body"]["recipient"] == {"id": user}
    assert sends[0]["body"]["messaging_type"] == "RESPONSE"
    # And the sandbox's echo, delivery and read callbacks move the outbound message to "read"
    mid = sends[0]["response"]["message_id"]
    wait_until(lambda: (stack.find(f"MSG#{mid}") or {}).get("status") == "read")
    echo = wait_until(lambda: [i for i in stack.items(user) if i.get("record_type") == "echo"])
    assert echo[0]["app_id"]
    stack.settled()
    assert len(reply_claims(stack, user)) == 1
    assert all(r["body"]["recipient"]["id"] == user for r in stack.sends(user)), "echoes were not answered"


def test_vonage_message_is_answered_once_and_its_status_reaches_read(stack: LocalStack) -> None:
    user = new_user()
    status, _ = stack.vonage_post("/vonage/inbound", vonage_inbound(user, "hello"))
    assert status == 200
    sends = wait_until(lambda: stack.sends(user, ok_only=True))
    body = sends[0]["body"]
    assert (body["channel"], body["to"], body["from"]) == ("messenger", user, PAGE_ID)
    uuid_ = sends[0]["response"]["message_uuid"]
    wait_until(lambda: (stack.find(f"MSG#{uuid_}") or {}).get("status") == "read")
    stack.settled()
    assert len(reply_claims(stack, user)) == 1


def test_every_event_of_a_batch_is_answered(stack: LocalStack) -> None:
    # Given one Meta POST with two entries, carrying messages of two users
    alice, bob = new_user(), new_user()
    payload = meta_body(meta_message(alice, "hi"), meta_message(bob, "hi"))
    payload["entry"].append(meta_body(meta_message(alice, "again"))["entry"][0])
    status, answer = stack.meta_post(payload)
    assert (status, answer["stored"]) == (200, 3)
    # Then each message gets its reply
    wait_until(lambda: len(reply_claims(stack, alice)) == 2 and len(reply_claims(stack, bob)) == 1)
    stack.settled()
    assert {c["state"] for c in reply_claims(stack, alice) + reply_claims(stack, bob)} == {"sent"}


def test_a_redelivered_message_is_answered_once(stack: LocalStack) -> None:
    user = new_user()
    payload = meta_body(meta_message(user, "hello"))
    assert stack.meta_post(payload)[0] == 200
    wait_until(lambda: stack.sends(user, ok_only=True))
    stack.settled()
    before = len(stack.sends(user))
    # When Meta delivers the same body again, and Vonage redelivers its message too
    status, answer = stack.meta_post(payload)
    assert (status, answer["duplicates"]) == (200, 1)
    vonage = vonage_inbound(user, "hello")
    assert stack.vonage_post("/vonage/inbound", vonage)[0] == 200
    assert stack.vonage_post("/vonage/inbound", vonage)[1]["duplicates"] == 1
    wait_until(lambda: stack.sends(user, ok_only=True)[before:])
    stack.settled()
    # Then the Meta message was not answered again, and the Vonage one once
    assert len([s for s in stack.sends(user) if s["provider"] == "meta"]) == before
    assert len(reply_claims(stack, user)) == 2


def test_echoes_are_stored_and_never_answered(stack: LocalStack) -> None:
    user = new_user()
    echo = {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": user},
        "timestamp": int(time.time() * 1000),
        "message": {
            "is_echo": True,
            "app_id": 1517776481860111,
            "mid": f"m_echo_{uuid.uuid4().hex}",
            "text": "sent from the Page inbox",
        },
    }
    assert stack.meta_post(meta_body(echo))[0] == 200
    assert "echo" in [i["record_type"] for i in stack.items(user)]
    stack.settled()
    assert stack.sends(user) == []
    assert reply_claims(stack, user) == []


def test_invalid_signatures_are_rejected_and_nothing_is_stored(stack: LocalStack) -> None:
    meta_user, vonage_user = new_user(), new_user()
    assert stack.meta_post(meta_body(meta_message(meta_user)), signature="sha256=" + "0" * 64)[0] in (401, 403)
    assert stack.meta_post(meta_body(meta_message(meta_user)), signature="sha1=abc")[0] in (401, 403)
    assert stack.meta_post(meta_body(meta_message(meta_user)), signature=None)[0] == 401
    assert stack.vonage_post("/vonage/inbound", vonage_inbound(vonage_user), authorization="Bearer x.y.z")[0] == 401
    assert stack.vonage_post("/vonage/inbound", vonage_inbound(vonage_user), authorization=None)[0] == 503
    stack.settled(quiet_s=0.5)
    assert stack.items(meta_user) == [] and stack.items(vonage_user) == []
    assert stack.sends(meta_user) == [] and stack.sends(vonage_user) == []


def test_a_transient_provider_error_is_retried_and_answered_once(stack: LocalStack) -> None:
    # Given the Graph sandbox fails the next send to this user with a 5xx
    user = new_user()
    stack.fault(provider="meta", fault="5xx", count=1, recipient=user)
    # When the user writes
    assert stack.meta_post(meta_body(meta_message(user, "hello")))[0] == 200
    # Then the failed send is retried and the reply arrives once
    wait_until(lambda: stack.sends(user, ok_only=True))
    stack.settled()
    statuses = [s["status"] for s in stack.sends(user)]
    assert statuses[0] == 500 and statuses.count(200) == len(statuses) - 1
    texts = [json.dumps(s["body"]["message"]) for s in stack.sends(user, ok_only=True)]
    assert len(texts) == len(set(texts)), "no reply part was sent twice"
    assert [c["state"] for c in reply_claims(stack, user)] == ["sent"]


def test_a_permanent_provider_error_is_recorded_and_not_retried(stack: LocalStack) -> None:
    user = new_user()
    stack.fault(provider="vonage", fault="permanent", code=422, count=5, recipient=user)
    assert stack.vonage_post("/vonage/inbound", vonage_inbound(user, "hello"))[0] == 200
    wait_until(lambda: stack.sends(user))
    wait_until(lambda: [c for c in reply_claims(stack, user) if c["state"] == "failed"])
    stack.settled()
    assert [s["status"] for s in stack.sends(user)] == [422]


def test_a_reply_failing_on_every_attempt_is_given_up_and_the_persons_next_message_is_answered(
    stack: LocalStack,
) -> None:
    # Given the Graph sandbox fails every send of one reply: 4 requests a turn (the in-invocation retries),
    # for MAX_ATTEMPTS turns
    user = new_user()
    known = len(stack.failures())
    failing = MAX_ATTEMPTS * RetryPolicy().max_attempts
    stack.fault(provider="meta", fault="5xx", count=failing, recipient=user)
    first, second = f"m_gu_{uuid.uuid4().hex[:8]}", f"m_gu_{uuid.uuid4().hex[:8]}"
    # When the user writes twice (the second waits behind the first: same conversation)
    now = int(time.time() * 1000)
    body = meta_body(
        meta_message(user, "hello", mid=first, ts=now), meta_message(user, "again", mid=second, ts=now + 1)
    )
    assert stack.meta_post(body)[0] == 200
    # Then the first reply is given up as failed after MAX_ATTEMPTS turns (logged as an error, counted), never sent
    try:
        wait_until(lambda: (stack.find(f"REPLY#{first}") or {}).get("state") == "failed", timeout=90, interval=0.5)
    except AssertionError as exc:
        states = [(c["inbound_event_id"], c["state"], c.get("attempts")) for c in reply_claims(stack, user)]
        raise AssertionError(f"claims {states}, sends {[s['status'] for s in stack.sends(user)]}") from exc
    # And the second message is answered right after it, once, without ever reaching the on-failure queue
    sends = wait_until(lambda: stack.sends(user, ok_only=True), timeout=30)
    stack.settled()
    claim = stack.find(f"REPLY#{first}")
    assert (claim["given_up"], claim["attempts"]) == ("retries_exhausted", MAX_ATTEMPTS)
    assert [s["status"] for s in stack.sends(user)] == [500] * failing + [200]
    assert [answered_event_id(s["body"]["message"]["metadata"]) for s in sends] == [second]
    assert {c["inbound_event_id"]: c["state"] for c in reply_claims(stack, user)} == {first: "failed", second: "sent"}
    assert stack.failures()[known:] == []
    assert stack.log_path is not None
    logged = [json.loads(line) for line in stack.log_path.read_text().splitlines() if line.startswith('{"level"')]
    given_up = [e for e in logged if e.get("event_id") == first and e["level"] == "ERROR"]
    assert [(e["message"], e["attempts"]) for e in given_up] == [("reply failed transiently too often; given up", 4)]


def test_restarting_the_reply_side_mid_stream_loses_and_repeats_nothing(stack: LocalStack) -> None:
    users = [new_user() for _ in range(3)]
    # Given the poller is stopped while messages keep arriving
    assert http("POST", f"{stack.api}/_local/poller/stop")[0] == 200
    for user in users:
        for n in range(2):
            assert stack.meta_post(meta_body(meta_message(user, f"message {n}")))[0] == 200
    time.sleep(0.5)
    assert all(stack.sends(user) == [] for user in users)
    # When the reply side restarts (a cold start, resuming from the saved checkpoints) and restarts again mid-way
    assert http("POST", f"{stack.api}/_local/poller/restart")[0] == 200
    wait_until(lambda: any(stack.sends(user) for user in users))
    assert http("POST", f"{stack.api}/_local/poller/restart")[0] == 200
    # Then every message is answered exactly once
    wait_until(lambda: all(len(reply_claims(stack, user)) == 2 for user in users), timeout=30)
    stack.settled()
    for user in users:
        assert {c["state"] for c in reply_claims(stack, user)} == {"sent"}
    # The users wrote the same texts, so a repeated send would show as a different count
    counts = {len(stack.sends(user, ok_only=True)) for user in users}
    assert len(counts) == 1 and counts != {0}
    assert stack.poller()["running"]


def chat_command(stack: LocalStack) -> list[str]:
    """`python -m local.chat` pointed at the test stack, as a user would run it from a pipe."""
    urls = ["--api", stack.api, "--sandbox", stack.sandbox, "--dynamodb", stack.dynamodb_url]
    return [sys.executable, "-m", "local.chat", *urls, "--timeout", "20"]


def test_chat_prints_the_reply_when_driven_from_a_pipe(stack: LocalStack) -> None:
    command = chat_command(stack)
    for provider in ("meta", "vonage"):
        result = subprocess.run(
            [*command, "--provider", provider],
            input="hello\n",
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "bot> " in result.stdout, result.stdout


def test_chat_sends_quick_reply_taps_postbacks_stickers_and_images(stack: LocalStack) -> None:
    # Given the chat client driven from a pipe with the rich-input commands
    command = [*chat_command(stack), "--provider", "meta"]
    script = "/tap HELP\n/postback GET_STARTED\n/sticker\n/image https://cdn.example.com/cat.jpg\n"
    result = subprocess.run(command, input=script, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    # Then each travels as its Meta event and gets the answer the default rules give it
    assert result.returncode == 0, result.stderr
    replies = [line for line in result.stdout.splitlines() if line.startswith("bot> ")]
    assert len(replies) == 4, result.stdout
    assert "what I can do" in replies[0]  # the HELP payload matches the help rule
    assert "Welcome" in replies[1]  # the Get Started button has a rule of its own
    assert "👍" in replies[2]  # stickers get a thumbs-up
    assert "picture" in replies[3]  # images are acknowledged as pictures


def test_a_burst_of_100_connections_is_served_concurrently_without_resets(stack: LocalStack) -> None:
    # Given 100 clients that connect at the same moment (Meta's verify GET runs the function and stores nothing)
    query = f"hub.mode=subscribe&hub.verify_token={META['verify_token']}&hub.challenge=42"
    barrier = threading.Barrier(100)

    def call(_: int) -> int:
        barrier.wait()
        try:
            return http("GET", f"{stack.api}/meta/webhook?{query}", timeout=120)[0]
        except OSError:  # refused or reset
            return 0

    with ThreadPoolExecutor(100) as clients:
        statuses = list(clients.map(call, range(100)))
    # Then every one is answered, by more than one warm "container" of the function
    assert statuses == [200] * 100
    functions = http("GET", f"{stack.api}/_local/health")[1]["parts"]["functions"]
    assert 1 < functions["WebhookFunction"]["workers"] <= functions["WebhookFunction"]["limit"]


def test_each_function_logs_with_its_own_name_and_context(stack: LocalStack) -> None:
    user = new_user()
    assert stack.meta_post(meta_body(meta_message(user, "hello")))[0] == 200
    wait_until(lambda: stack.sends(user, ok_only=True))
    stack.settled()
    assert stack.log_path is not None
    lines = [json.loads(line) for line in stack.log_path.read_text().splitlines() if line.startswith('{"level"')]
    mine = [line for line in lines if user in json.dumps(line)]
    sent = [line for line in mine if line["message"] == "reply sent"]
    assert sent and {line["function_name"] for line in sent} == {"ReplyFunction"}
    # (without the keys the function's name already says: docs/cost.md)
    assert not any({"function_arn", "function_memory_size", "service", "location"} & set(line) for line in mine)
    accepted = [line for line in lines if line["message"] == "events accepted"]
    assert accepted and {line["function_name"] for line in accepted} == {"WebhookFunction"}
    assert all(line["function_request_id"] for line in sent + accepted)


# -- what the stack listens on -----------------------------------------------------------------------

PROC = Path("/proc")
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column


def process_tree(root: int) -> set[int]:
    """`root` and every process below it (by parent pid, read from /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += children.get(pid, [])
    return tree


def socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        for fd in (PROC / str(pid) / "fd").glob("*"):
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def proc_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in host (little-endian) byte order."""
    raw = b"".join(bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8))
    address = ipaddress.ip_address(raw)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def listening_sockets(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that one of `pids` holds."""
    inodes = socket_inodes(pids)
    found = set()
    for table in ("tcp", "tcp6"):
        for line in (PROC / "net" / table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                address, port = fields[1].split(":")
                found.add((str(proc_address(address)), int(port, 16)))
    return found


def test_proc_addresses_are_decoded() -> None:
    assert str(proc_address("0100007F")) == "127.0.0.1"
    assert str(proc_address("00000000")) == "0.0.0.0"
    assert str(proc_address("0000000000000000FFFF00000100007F")) == "127.0.0.1"  # ::ffff:127.0.0.1
    assert str(proc_address("00000000000000000000000001000000")) == "::1"
    assert str(proc_address("00000000000000000000000000000000")) == "::"


@pytest.mark.skipif(not (PROC / "net" / "tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_everything_the_stack_started_listens_on_loopback_only(stack: LocalStack) -> None:
    # Given the running stack (LOCAL_BIND_HOST unset) / When we list the listening sockets of its process tree
    sockets = listening_sockets(process_tree(stack.pid))
    # Then the API, DynamoDB Local, moto and the sandbox are among them, and every one is on 127.0.0.1
    ports = {port for _address, port in sockets}
    for url in (stack.api, stack.dynamodb_url, stack.moto_url, stack.sandbox):
        assert urlsplit(url).port in ports, (url, sockets)
    assert {address for address, _port in sockets} == {"127.0.0.1"}, sockets
